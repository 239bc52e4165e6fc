"""Label selectors, field selectors and Arktos's hashKey.

These sit on the API server's hot path: every list and every watch event is
filtered through them, and one watch cache may hold thousands of watchers (one
per node agent, one per partitioned controller instance).  So a selector is
parsed once into an immutable, compiled matcher (parsing is also memoised per
selector string, because thousands of watchers send the same few strings) and
matching does no parsing, no allocation and no regular expressions.

Label selectors follow Kubernetes exactly (`a=b`, `a==b`, `a!=b`,
`a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, and the structured
`matchLabels`/`matchExpressions` form).  Field selectors follow Kubernetes
(`f=v`, `f==v`, `f!=v`, `\\,` `\\=` `\\\\` escapes) plus what Arktos added for
partitioned controllers: hashKey range terms (`metadata.hashkey=gt:-10`,
`=gte:`, `=lt:`, `=lte:`), owner-reference hashKeys
(`metadata.ownerReferences.hashkey.ReplicaSet=lte:100`) and `;` between
alternatives (Arktos's reflector ORs several ranges with it, escaped as `\\;`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from arktos.api.errors import FieldError, bad_request, invalid, not_supported, required

__all__ = [
    "BASE_FIELDS",
    "HASHKEY_FIELD",
    "HASHKEY_MAX",
    "OWNER_HASHKEY_PREFIX",
    "FieldSelector",
    "FieldTerm",
    "LabelSelector",
    "Requirement",
    "compute_hash_key",
    "escape_field_value",
    "everything",
    "format_labels",
    "is_hashkey_field",
    "label_selector_errors",
    "label_selector_from_dict",
    "label_selector_from_set",
    "nothing",
    "parse_field_selector",
    "parse_label_selector",
    "selectable_fields",
    "validate_label_key",
    "validate_label_value",
]

_EMPTY: Mapping[str, Any] = {}

# ---------------------------------------------------------------------------
# hashKey
# ---------------------------------------------------------------------------

HASHKEY_MAX = (1 << 63) - 1
HASHKEY_FIELD = "metadata.hashkey"
OWNER_HASHKEY_PREFIX = "metadata.ownerReferences.hashkey."


def compute_hash_key(uid: str) -> int:
    """Arktos's `metadata.hashKey` for an object with this UID.

    The first 8 bytes of BLAKE2b (big-endian) with the top bit cleared, so the
    result is in 0..2^63-1 as Arktos requires.  BLAKE2b rather than a Python
    FNV loop because hashlib runs it in C (one call per create, and far fewer
    instructions than a per-byte Python loop), its output is uniform (the key
    space is split evenly between controller instances, so a skewed hash would
    skew their load), and it is specified, so every process and every
    release computes the same key for the same UID (unlike `hash()`, which is
    salted per process).  Changing this function would reassign every stored
    object to a different controller instance: don't.
    """
    digest = hashlib.blake2b(uid.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & HASHKEY_MAX


def is_hashkey_field(name: str) -> bool:
    """Whether a field-selector name is one of Arktos's hashKey fields.

    These are accepted for every kind, because every object has a hashKey and
    owner references; the partitioned controllers rely on that.
    """
    return name == HASHKEY_FIELD or (name.startswith(OWNER_HASHKEY_PREFIX) and len(name) > len(OWNER_HASHKEY_PREFIX))


# ---------------------------------------------------------------------------
# Label key / value validation (Kubernetes rules)
# ---------------------------------------------------------------------------

_QNAME_CHAR = "[-A-Za-z0-9_.]"
_QNAME_RE = re.compile(r"(?:[A-Za-z0-9]" + _QNAME_CHAR + r"*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_QNAME_HELP = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_DNS_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


@functools.lru_cache(maxsize=4096)
def _key_errors(key: str) -> tuple[str, ...]:
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            errs.append("prefix part must be no more than 253 characters")
        elif not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            errs.append("prefix part " + _DNS_HELP)
    else:
        return (
            "a qualified name " + _QNAME_HELP + " with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')",
        )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not _QNAME_RE.fullmatch(name):
        errs.append("name part " + _QNAME_HELP)
    return tuple(errs)


def validate_label_key(key: str) -> list[str]:
    """Problems with a label key (a qualified name: optional DNS prefix + '/' + name)."""
    return list(_key_errors(key))


@functools.lru_cache(maxsize=4096)
def _value_errors(value: str) -> tuple[str, ...]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if value and not _QNAME_RE.fullmatch(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
            "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return tuple(errs)


def validate_label_value(value: str) -> list[str]:
    """Problems with a label value (empty, or up to 63 name characters)."""
    return list(_value_errors(value))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """`k=v,k2=v2` sorted by key, or `<none>`: how kubectl prints a label map."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------

# Operators as Kubernetes' selection package names them (DoubleEquals is
# folded into Equals: they mean the same, and one spelling keeps the
# canonical form canonical).
EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = (
    "=", "!=", "in", "notin", "exists", "!", "gt", "lt",
)
_OP_ORDER = {EQUALS: 0, NOT_EQUALS: 1, IN: 2, NOT_IN: 3, EXISTS: 4, DOES_NOT_EXIST: 5, GREATER_THAN: 6, LESS_THAN: 7}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a label selector; `values` is sorted and de-duplicated."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({','.join(self.values)})"
        if op == GREATER_THAN:
            return f"{self.key}>{self.values[0]}"
        if op == LESS_THAN:
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{op}{self.values[0]}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics: `!=`/`notin` also match when the key is absent."""
        return LabelSelector((self,)).matches(labels)


class LabelSelector:
    """A compiled label selector: the AND of its requirements.

    Matching is split by operator into flat tuples so that the common case
    (a few equality terms, as in every controller's selector) is one dict
    lookup per term and nothing else.
    """

    __slots__ = ("_absent", "_eq", "_exists", "_in", "_ne", "_nothing", "_notin", "_num", "_only_eq", "_str",
                 "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, match_nothing: bool = False) -> None:
        reqs = tuple(sorted(requirements, key=lambda r: (r.key, _OP_ORDER[r.operator], r.values)))
        self.requirements: tuple[Requirement, ...] = reqs
        self._nothing = match_nothing
        self._eq = tuple((r.key, r.values[0]) for r in reqs if r.operator == EQUALS)
        self._ne = tuple((r.key, r.values[0]) for r in reqs if r.operator == NOT_EQUALS)
        self._in = tuple((r.key, frozenset(r.values)) for r in reqs if r.operator == IN)
        self._notin = tuple((r.key, frozenset(r.values)) for r in reqs if r.operator == NOT_IN)
        self._exists = tuple(r.key for r in reqs if r.operator == EXISTS)
        self._absent = tuple(r.key for r in reqs if r.operator == DOES_NOT_EXIST)
        self._num = tuple(
            (r.key, r.operator == GREATER_THAN, int(r.values[0]))
            for r in reqs
            if r.operator in (GREATER_THAN, LESS_THAN)
        )
        self._only_eq = len(self._eq) == len(reqs)
        self._str = ",".join(str(r) for r in reqs)

    @property
    def empty(self) -> bool:
        """True when the selector selects everything (no requirements)."""
        return not self.requirements and not self._nothing

    @property
    def match_nothing(self) -> bool:
        """True for the selector a missing (null) structured selector means."""
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        if labels is None:
            labels = _EMPTY
        get = labels.get
        for k, v in self._eq:
            if get(k) != v:
                return False
        if self._only_eq:
            return True
        for k, v in self._ne:
            if get(k) == v:
                return False
        for k, vs in self._in:
            if get(k) not in vs:
                return False
        for k, vs in self._notin:
            if get(k) in vs:
                return False
        for k in self._exists:
            if k not in labels:
                return False
        for k in self._absent:
            if k in labels:
                return False
        for k, greater, bound in self._num:
            raw = get(k)
            if raw is None:
                return False
            try:
                val = int(raw)
            except ValueError:
                return False
            if (val <= bound) if greater else (val >= bound):
                return False
        return True

    def requires_exact(self, key: str) -> str | None:
        """The value `key` must equal, if the selector pins it (for indexing)."""
        for k, v in self._eq:
            if k == key:
                return v
        for k, vs in self._in:
            if k == key and len(vs) == 1:
                return next(iter(vs))
        return None

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return "LabelSelector(<nothing>)" if self._nothing else f"LabelSelector({self._str!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))

    def __bool__(self) -> bool:
        # A selector object is always "present"; use `.empty` for "selects all".
        return True


_EVERYTHING = LabelSelector()
_NOTHING = LabelSelector(match_nothing=True)


def everything() -> LabelSelector:
    """The selector that matches every label set."""
    return _EVERYTHING


def nothing() -> LabelSelector:
    """The selector that matches no label set (what a null LabelSelector means)."""
    return _NOTHING


# -- string form -------------------------------------------------------------

_LABEL_SPECIAL = frozenset("=!(),<>")
_LABEL_SPACE = frozenset(" \t\r\n")
_BINARY_OPS = "in, notin, =, ==, !=, gt, lt"

# token kinds
_T_ID, _T_NOT, _T_EQ, _T_NEQ, _T_GT, _T_LT, _T_OPEN, _T_CLOSE, _T_COMMA, _T_END = range(10)


class _SyntaxError(Exception):
    pass


def _lex_labels(s: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in _LABEL_SPACE:
            i += 1
            continue
        if c in _LABEL_SPECIAL:
            nxt = s[i + 1] if i + 1 < n else ""
            if c == "!" and nxt == "=":
                tokens.append((_T_NEQ, "!="))
                i += 2
            elif c == "=" and nxt == "=":
                tokens.append((_T_EQ, "=="))
                i += 2
            else:
                kind = {"!": _T_NOT, "=": _T_EQ, ">": _T_GT, "<": _T_LT, "(": _T_OPEN, ")": _T_CLOSE,
                        ",": _T_COMMA}[c]
                tokens.append((kind, c))
                i += 1
            continue
        j = i
        while j < n and s[j] not in _LABEL_SPECIAL and s[j] not in _LABEL_SPACE:
            j += 1
        tokens.append((_T_ID, s[i:j]))
        i = j
    tokens.append((_T_END, ""))
    return tokens


def _check_key(key: str) -> None:
    errs = _key_errors(key)
    if errs:
        raise _SyntaxError(f'key: Invalid value: "{key}": {"; ".join(errs)}')


def _check_value(value: str) -> None:
    errs = _value_errors(value)
    if errs:
        raise _SyntaxError(f'values[0]: Invalid value: "{value}": {"; ".join(errs)}')


class _LabelParser:
    def __init__(self, s: str) -> None:
        self.toks = _lex_labels(s)
        self.pos = 0

    def peek(self) -> tuple[int, str]:
        return self.toks[self.pos]

    def take(self) -> tuple[int, str]:
        tok = self.toks[self.pos]
        if tok[0] != _T_END:
            self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        if self.peek()[0] == _T_END:
            return reqs
        while True:
            reqs.append(self.requirement())
            kind, lit = self.take()
            if kind == _T_END:
                return reqs
            if kind != _T_COMMA:
                raise _SyntaxError(f"found '{lit}', expected: ',' or 'end of string'")

    def key(self) -> str:
        kind, lit = self.take()
        if kind != _T_ID or lit in ("in", "notin"):
            raise _SyntaxError(f"found '{lit}', expected: identifier")
        _check_key(lit)
        return lit

    def requirement(self) -> Requirement:
        kind, lit = self.peek()
        if kind == _T_NOT:
            self.take()
            return Requirement(self.key(), DOES_NOT_EXIST)
        if kind != _T_ID:
            raise _SyntaxError(f"found '{lit}', expected: !, identifier, or 'end of string'")
        key = self.key()
        kind, lit = self.peek()
        if kind in (_T_COMMA, _T_END):
            return Requirement(key, EXISTS)
        self.take()
        if kind in (_T_EQ, _T_NEQ):
            value = self.exact_value()
            return Requirement(key, EQUALS if kind == _T_EQ else NOT_EQUALS, (value,))
        if kind == _T_ID and lit in ("in", "notin"):
            values = self.value_set(lit)
            return Requirement(key, IN if lit == "in" else NOT_IN, values)
        if kind in (_T_GT, _T_LT):
            vkind, value = self.take()
            if vkind != _T_ID:
                raise _SyntaxError(f"found '{value}', expected: identifier")
            try:
                int(value)
            except ValueError:
                raise _SyntaxError(
                    f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}"
                ) from None
            return Requirement(key, GREATER_THAN if kind == _T_GT else LESS_THAN, (value,))
        raise _SyntaxError(f"found '{lit}', expected: {_BINARY_OPS}")

    def exact_value(self) -> str:
        kind, lit = self.peek()
        if kind in (_T_COMMA, _T_END):
            return ""
        self.take()
        if kind != _T_ID:
            raise _SyntaxError(f"found '{lit}', expected: identifier")
        _check_value(lit)
        return lit

    def value_set(self, op: str) -> tuple[str, ...]:
        kind, lit = self.take()
        if kind != _T_OPEN:
            raise _SyntaxError(f"found '{lit}', expected: '('")
        if self.peek()[0] == _T_CLOSE:
            self.take()
            raise _SyntaxError(f"for '{op}' operator, values set can't be empty")
        values: set[str] = set()
        # Items separated by commas; an empty item is the empty value, as in
        # Kubernetes ("(x,)" is {"x", ""}).
        while True:
            kind, lit = self.peek()
            if kind == _T_ID:
                self.take()
                _check_value(lit)
                values.add(lit)
                kind, lit = self.peek()
            elif kind in (_T_COMMA, _T_CLOSE):
                values.add("")
            else:
                raise _SyntaxError(f"found '{lit}', expected: ',', or identifier")
            if kind == _T_CLOSE:
                self.take()
                return tuple(sorted(values))
            if kind != _T_COMMA:
                raise _SyntaxError(f"found '{lit}', expected: ',' or ')'")
            self.take()


@functools.lru_cache(maxsize=1024)
def _parse_label_cached(s: str) -> LabelSelector:
    try:
        reqs = _LabelParser(s).parse()
    except _SyntaxError as e:
        raise bad_request(f'unable to parse requirement: {e} (label selector "{s}")') from None
    return LabelSelector(reqs) if reqs else _EVERYTHING


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse the `?labelSelector=` string form; empty selects everything.

    Raises a 400 BadRequest APIError naming the problem on bad syntax or an
    invalid key/value.
    """
    if not s or s.isspace():
        return _EVERYTHING
    return _parse_label_cached(s)


# -- structured form -----------------------------------------------------------

_EXPR_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_errors(d: Any, path: str = "spec.selector") -> list[FieldError]:
    """Field errors for a structured LabelSelector (`matchLabels` / `matchExpressions`).

    For object validation (422), where every problem should be reported with
    its field path; `label_selector_from_dict` raises on the first instead.
    """
    errs: list[FieldError] = []
    if d is None:
        return errs
    if not isinstance(d, dict):
        return [invalid(path, d, "must be an object")]
    ml = d.get("matchLabels")
    if ml is not None:
        if not isinstance(ml, dict):
            errs.append(invalid(f"{path}.matchLabels", ml, "must be an object"))
        else:
            for k, v in ml.items():
                for msg in _key_errors(k):
                    errs.append(invalid(f"{path}.matchLabels", k, msg))
                if not isinstance(v, str):
                    errs.append(invalid(f"{path}.matchLabels", v, "must be a string"))
                else:
                    for msg in _value_errors(v):
                        errs.append(invalid(f"{path}.matchLabels", v, msg))
    exprs = d.get("matchExpressions")
    if exprs is not None:
        if not isinstance(exprs, list):
            return [*errs, invalid(f"{path}.matchExpressions", exprs, "must be a list")]
        for i, e in enumerate(exprs):
            p = f"{path}.matchExpressions[{i}]"
            if not isinstance(e, dict):
                errs.append(invalid(p, e, "must be an object"))
                continue
            key = e.get("key")
            if not key:
                errs.append(required(f"{p}.key"))
            elif not isinstance(key, str):
                errs.append(invalid(f"{p}.key", key, "must be a string"))
            else:
                for msg in _key_errors(key):
                    errs.append(invalid(f"{p}.key", key, msg))
            op = e.get("operator")
            values = e.get("values") or []
            if not op:
                errs.append(required(f"{p}.operator"))
            elif op not in _EXPR_OPS:
                errs.append(not_supported(f"{p}.operator", op, list(_EXPR_OPS)))
            elif not isinstance(values, list):
                errs.append(invalid(f"{p}.values", values, "must be a list"))
            elif op in ("In", "NotIn") and not values:
                errs.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
            elif op in ("Exists", "DoesNotExist") and values:
                errs.append(
                    FieldError(f"{p}.values", "FieldValueForbidden",
                               "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
                )
            else:
                for j, v in enumerate(values):
                    if not isinstance(v, str):
                        errs.append(invalid(f"{p}.values[{j}]", v, "must be a string"))
                        continue
                    for msg in _value_errors(v):
                        errs.append(invalid(f"{p}.values[{j}]", v, msg))
    return errs


def label_selector_from_dict(d: Mapping[str, Any] | None) -> LabelSelector:
    """Compile a structured LabelSelector as found in Deployment/ReplicaSet specs.

    As in Kubernetes, a null selector matches nothing (a controller with no
    selector must not adopt every pod) while an empty one (`{}`) matches
    everything.  Raises 400 BadRequest on an invalid selector.
    """
    if d is None:
        return _NOTHING
    errs = label_selector_errors(d, "selector")
    if errs:
        raise bad_request("invalid label selector: " + "; ".join(e.message() for e in errs))
    reqs = [Requirement(k, EQUALS, (v,)) for k, v in (d.get("matchLabels") or {}).items()]
    for e in d.get("matchExpressions") or []:
        op = _EXPR_OPS[e["operator"]]
        values = tuple(sorted(set(e.get("values") or ()))) if op in (IN, NOT_IN) else ()
        reqs.append(Requirement(e["key"], op, values))
    return LabelSelector(reqs) if reqs else _EVERYTHING


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """The selector matching exactly these labels (a Service's or RC's `spec.selector` map).

    An empty map selects everything, as Kubernetes' SelectorFromSet does; a
    caller for which "no selector" means "select nothing" checks that itself.
    """
    if not labels:
        return _EVERYTHING
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

# Term operators.  `gt`/`gte`/`lt`/`lte` are Arktos's, on hashKey fields only.
F_EQ, F_NE, F_GT, F_GTE, F_LT, F_LTE = "=", "!=", "gt", "gte", "lt", "lte"
_RANGE_OPS = (F_GT, F_GTE, F_LT, F_LTE)
# Checked in this order at each position: the range forms first (they start
# with "="), then "!=", then "==" before "=" so no "=" is left on the value.
_TERM_OPS = (("=lte:", F_LTE), ("=gte:", F_GTE), ("=lt:", F_LT), ("=gt:", F_GT), ("!=", F_NE),
             ("==", F_EQ), ("=", F_EQ))
_META_FIELDS = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.tenant": "tenant"}
BASE_FIELDS = frozenset(_META_FIELDS)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def escape_field_value(value: str) -> str:
    """Escape a literal for use as a field-selector value (`\\`, `,`, `;`, `=`)."""
    if not any(c in value for c in "\\,;="):
        return value
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("=", "\\=")


def _unescape(value: str) -> str:
    if not any(c in value for c in "\\,;="):
        return value
    out: list[str] = []
    slash = False
    for c in value:
        if slash:
            if c not in "\\,=;":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            slash = False
        elif c == "\\":
            slash = True
        elif c in ",;=":
            raise bad_request(f"invalid field selector: unescaped character in value: {c!r}")
        else:
            out.append(c)
    if slash:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_unescaped(s: str, sep: str) -> list[str]:
    parts: list[str] = []
    start = 0
    slash = False
    for i, c in enumerate(s):
        if slash:
            slash = False
        elif c == "\\":
            slash = True
        elif c == sep:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The field name has no escaping: the first operator occurrence splits.
    for i in range(len(term)):
        for text, op in _TERM_OPS:
            if term.startswith(text, i):
                return term[:i], op, term[i + len(text):]
    return None


@dataclass(frozen=True, slots=True, order=True)
class FieldTerm:
    """One `field op value` term; `value` is unescaped."""

    field: str
    op: str
    value: str

    def __str__(self) -> str:
        if self.op in _RANGE_OPS:
            return f"{self.field}={self.op}:{escape_field_value(self.value)}"
        return f"{self.field}{self.op}{escape_field_value(self.value)}"


def _owner_hash(meta: Mapping[str, Any], kind: str) -> int | None:
    """hashKey of the first owner reference of this kind, or None."""
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == kind:
            return _as_int(ref.get("hashKey", 0))
    return None


def _as_int(v: Any) -> int:
    if type(v) is int:
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _bounds(terms: Iterable[FieldTerm]) -> tuple[int, int] | None:
    """(exclusive lower, inclusive upper) implied by the range/equality terms, or None."""
    lo, hi, seen = _INT64_MIN - 1, _INT64_MAX, False
    for t in terms:
        v = int(t.value)
        if t.op == F_GT:
            lo = max(lo, v)
        elif t.op == F_GTE:
            lo = max(lo, v - 1)
        elif t.op == F_LT:
            hi = min(hi, v - 1)
        elif t.op == F_LTE:
            hi = min(hi, v)
        elif t.op == F_EQ:
            lo, hi = max(lo, v - 1), min(hi, v)
        else:
            continue
        seen = True
    return (lo, hi) if seen else None


class _Group:
    """An AND of terms, compiled.

    hashKey terms are folded into one interval per field, string terms into
    flat (key, value) tuples split by where the value lives, so matching is
    a few comparisons with no function calls per term.
    """

    __slots__ = ("field_eq", "field_ne", "hash_bounds", "hash_ne", "meta_eq", "meta_ne", "owner_bounds",
                 "owner_ne", "simple", "terms")

    def __init__(self, terms: tuple[FieldTerm, ...]) -> None:
        self.terms = terms
        self.hash_bounds = _bounds(t for t in terms if t.field == HASHKEY_FIELD)
        kinds = sorted({t.field for t in terms if t.field.startswith(OWNER_HASHKEY_PREFIX)})
        owner: list[tuple[str, int, int]] = []
        for f in kinds:
            b = _bounds(t for t in terms if t.field == f)
            if b is not None:
                owner.append((f[len(OWNER_HASHKEY_PREFIX):], b[0], b[1]))
        self.owner_bounds = tuple(owner)
        strings = [t for t in terms if not is_hashkey_field(t.field)]
        self.meta_eq = tuple((_META_FIELDS[t.field], t.value) for t in strings
                             if t.op == F_EQ and t.field in _META_FIELDS)
        self.meta_ne = tuple((_META_FIELDS[t.field], t.value) for t in strings
                             if t.op == F_NE and t.field in _META_FIELDS)
        self.field_eq = tuple((t.field, t.value) for t in strings if t.op == F_EQ and t.field not in _META_FIELDS)
        self.field_ne = tuple((t.field, t.value) for t in strings if t.op == F_NE and t.field not in _META_FIELDS)
        hash_ne = [t for t in terms if t.op == F_NE and is_hashkey_field(t.field)]
        self.hash_ne = tuple(int(t.value) for t in hash_ne if t.field == HASHKEY_FIELD)
        self.owner_ne = tuple((t.field[len(OWNER_HASHKEY_PREFIX):], int(t.value)) for t in hash_ne
                              if t.field != HASHKEY_FIELD)
        self.simple = not (self.owner_bounds or self.meta_ne or self.field_ne or hash_ne)

    def matches(self, meta: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
        b = self.hash_bounds
        if b is not None or self.hash_ne:
            hk = meta.get("hashKey", 0)
            if type(hk) is not int:
                hk = _as_int(hk)
            if b is not None and not (b[0] < hk <= b[1]):
                return False
            if hk in self.hash_ne:
                return False
        for k, v in self.meta_eq:
            if meta.get(k, "") != v:
                return False
        for k, v in self.field_eq:
            if fields.get(k, "") != v:
                return False
        if self.simple:
            return True
        for k, v in self.meta_ne:
            if meta.get(k, "") == v:
                return False
        for k, v in self.field_ne:
            if fields.get(k, "") == v:
                return False
        for kind, lo, hi in self.owner_bounds:
            ohk = _owner_hash(meta, kind)
            if ohk is None or not (lo < ohk <= hi):
                return False
        for kind, v in self.owner_ne:  # noqa: SIM110 - plain loop, hot path
            if _owner_hash(meta, kind) == v:
                return False
        return True


class FieldSelector:
    """A compiled field selector: an OR (`;`) of ANDs (`,`) of terms.

    Almost every selector has a single AND group; alternatives exist because
    Arktos's partitioned reflector ORs several hashKey ranges.
    """

    __slots__ = ("_groups", "_str", "field_names", "groups", "needs_fields")

    def __init__(self, groups: Iterable[Iterable[FieldTerm]] = ()) -> None:
        canon = sorted({tuple(sorted(set(g))) for g in groups if g})
        self.groups: tuple[tuple[FieldTerm, ...], ...] = tuple(canon)
        self._groups = tuple(_Group(g) for g in self.groups)
        self.field_names: frozenset[str] = frozenset(t.field for g in self.groups for t in g)
        # Whether `matches` needs the strategy-computed fields at all: callers
        # skip computing them for metadata-only and hashKey-only selectors.
        self.needs_fields: bool = any(f not in BASE_FIELDS and not is_hashkey_field(f) for f in self.field_names)
        self._str = ";".join(",".join(str(t) for t in g) for g in self.groups)

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def terms(self) -> tuple[FieldTerm, ...]:
        return tuple(t for g in self.groups for t in g)

    def matches(self, obj: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> bool:
        """Whether `obj` is selected.

        metadata.name/namespace/tenant and hashKeys are read from `obj`; any
        other field from `fields` (what the kind's strategy computes), where a
        missing field counts as the empty string, as in Kubernetes.  A range
        term on an owner kind the object has no owner reference of never
        matches.
        """
        groups = self._groups
        if not groups:
            return True
        meta = obj.get("metadata") or _EMPTY
        f = fields if fields is not None else _EMPTY
        if len(groups) == 1:
            return groups[0].matches(meta, f)
        return any(g.matches(meta, f) for g in groups)

    def exact(self, name: str) -> str | None:
        """The value an equality term requires for `name` (e.g. spec.nodeName), if any.

        With alternatives, only when every alternative requires the same value,
        so a watch cache may index on it without missing events.
        """
        if not self.groups:
            return None
        found: str | None = None
        for g in self.groups:
            vals = {t.value for t in g if t.field == name and t.op == F_EQ}
            if len(vals) != 1:
                return None  # unconstrained, or contradictory (matches nothing anyway)
            v = next(iter(vals))
            if found is None:
                found = v
            elif found != v:
                return None
        return found

    def hash_ranges(self, field: str = HASHKEY_FIELD) -> list[tuple[int, int]] | None:
        """Per alternative, the (exclusive lower, inclusive upper) bound on `field`.

        None when some alternative does not bound the field (then the
        selector is unbounded on it).  An interval with lower >= upper is empty.
        """
        if not self.groups:
            return None
        out: list[tuple[int, int]] = []
        for g in self.groups:
            b = _bounds(t for t in g if t.field == field)
            if b is None:
                return None
            out.append(b)
        return out

    def hash_range(self, field: str = HASHKEY_FIELD) -> tuple[int, int] | None:
        """The (exclusive lower, inclusive upper) bound on hashKey the selector implies.

        For one AND group (the usual case) this is exact for the range terms;
        with `;` alternatives it is the hull of their intervals, a superset, so
        use it to prefilter and `matches` to decide.  Without a bound on one
        side the type's limit is used: -2^63-1 (exclusive) and 2^63-1.
        `field` may be an owner field, e.g.
        `metadata.ownerReferences.hashkey.ReplicaSet`.
        """
        ranges = self.hash_ranges(field)
        if not ranges:
            return None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"FieldSelector({self._str!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.groups == other.groups

    def __hash__(self) -> int:
        return hash(self.groups)


_EVERY_FIELD = FieldSelector()


@functools.lru_cache(maxsize=4096)
def _parse_fields_cached(s: str) -> FieldSelector:
    groups: list[list[FieldTerm]] = []
    for alt in _split_unescaped(s, ";"):
        terms: list[FieldTerm] = []
        for part in _split_unescaped(alt, ","):
            if not part:
                continue
            split = _split_term(part)
            if split is None:
                raise bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
            field, op, raw = split
            value = _unescape(raw)
            if is_hashkey_field(field):
                try:
                    n = int(value)
                except ValueError:
                    raise bad_request(
                        f"invalid field selector: {field} needs an integer value, got '{value}'"
                    ) from None
                if not _INT64_MIN <= n <= _INT64_MAX:
                    raise bad_request(f"invalid field selector: {field} value {value} is out of int64 range")
                value = str(n)  # canonical: "+5" and "05" are 5
            elif op in _RANGE_OPS:
                raise bad_request(
                    f"invalid field selector: operator '{op}' is only supported on hashkey fields "
                    f"({HASHKEY_FIELD}, {OWNER_HASHKEY_PREFIX}<Kind>), not on '{field}'"
                )
            terms.append(FieldTerm(field, op, value))
        if terms:
            groups.append(terms)
    return FieldSelector(groups) if groups else _EVERY_FIELD


def parse_field_selector(s: str | None, allowed: Iterable[str] = BASE_FIELDS) -> FieldSelector:
    """Parse the `?fieldSelector=` string form; empty selects everything.

    `allowed` is the set of field names the kind supports (see
    `selectable_fields`); hashKey fields are always allowed.  An unknown name
    is a 400 `field label not supported: <name>`, bad syntax a 400 naming the
    problem.
    """
    if not s:
        return _EVERY_FIELD
    sel = _parse_fields_cached(s)
    for name in sel.field_names:
        if name not in allowed and not is_hashkey_field(name):
            raise bad_request(f"field label not supported: {name}")
    return sel


def selectable_fields(info: Any) -> frozenset[str]:
    """The field-selector names a kind supports: the metadata ones plus its strategy's.

    `info` is a ResourceInfo (typed loosely to keep this module free of a
    registry import cycle).
    """
    strategy = getattr(info, "strategy", None)
    extra = tuple(getattr(strategy, "field_names", ()) or ())
    if not extra:
        return BASE_FIELDS
    return BASE_FIELDS | frozenset(extra)
