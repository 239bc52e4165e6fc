"""Label selectors, field selectors (with Arktos hashKey ranges) and compute_hash_key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from arktos.api.errors import APIError
from arktos.api.selectors import (
    BASE_FIELDS,
    HASHKEY_MAX,
    compute_hash_key,
    escape_field_value,
    format_labels,
    label_selector_errors,
    label_selector_from_dict,
    label_selector_from_set,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
    validate_label_key,
    validate_label_value,
)

# ---------------------------------------------------------------------------
# Label selectors: string form
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app=web", {}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),  # != matches when the key is absent (Kubernetes)
        ("app!=web", {"app": "web"}, False),
        ("tier in (fe,be)", {"tier": "be"}, True),
        ("tier in (fe,be)", {"tier": "db"}, False),
        ("tier in (fe,be)", {}, False),
        ("tier notin (fe)", {"tier": "be"}, True),
        ("tier notin (fe)", {}, True),
        ("tier notin (fe)", {"tier": "fe"}, False),
        ("legacy", {"legacy": ""}, True),
        ("legacy", {}, False),
        ("!legacy", {}, True),
        ("!legacy", {"legacy": "x"}, False),
        ("a=", {"a": ""}, True),
        ("a=", {}, False),
        ("n>3", {"n": "4"}, True),
        ("n>3", {"n": "3"}, False),
        ("n<3", {"n": "-1"}, True),
        ("n>3", {"n": "x"}, False),
        ("n>3", {}, False),
        ("app=web, tier in (fe, be), !legacy", {"app": "web", "tier": "fe"}, True),
        ("app=web,tier in (fe,be),!legacy", {"app": "web", "tier": "fe", "legacy": "1"}, False),
        ("example.com/role=db", {"example.com/role": "db"}, True),
        ("a=in", {"a": "in"}, True),  # keywords are plain values after an operator
    ],
)
def test_label_selector_semantics(selector: str, labels: dict, expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


def test_label_selector_empty_selects_everything() -> None:
    for s in ("", "   ", None):
        sel = parse_label_selector(s)
        assert sel.empty
        assert sel.matches({}) and sel.matches({"a": "b"}) and sel.matches(None)
        assert str(sel) == ""


def test_label_selector_canonical_string() -> None:
    sel = parse_label_selector("tier in (b,a), app==web,!old,  env!=prod,x,n>3")
    assert str(sel) == "app=web,env!=prod,n>3,!old,tier in (a,b),x"
    # The canonical form parses back to an equal selector.
    assert parse_label_selector(str(sel)) == sel
    assert hash(parse_label_selector(str(sel))) == hash(sel)


def test_label_selector_empty_set_items() -> None:
    # As in Kubernetes, "(x,)" holds x and the empty value.
    sel = parse_label_selector("a in (x,)")
    assert str(sel) == "a in (,x)"
    assert sel.matches({"a": ""}) and sel.matches({"a": "x"}) and not sel.matches({"a": "y"})


def test_label_selector_requires_exact() -> None:
    sel = parse_label_selector("app=web,tier in (fe),env notin (x)")
    assert sel.requires_exact("app") == "web"
    assert sel.requires_exact("tier") == "fe"
    assert sel.requires_exact("env") is None
    assert sel.requires_exact("other") is None


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ("a b", "found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a in ()", "values set can't be empty"),
        ("a in (x", "expected: ',' or ')'"),
        ("a in x", "expected: '('"),
        ("=x", "expected: !, identifier"),
        ("a=b=c", "expected: ',' or 'end of string'"),
        ("a,", "found ''"),
        ("-a=b", "name part must consist of alphanumeric characters"),
        ("a=" + "x" * 64, "must be no more than 63 characters"),
        ("a=b c", "expected: ',' or 'end of string'"),
        ("a=-x", "a valid label must be an empty string"),
        ("a>b", "must be an integer"),
        ("Example.com/a=b", "prefix part a lowercase RFC 1123 subdomain"),
        ("a/b/c", "a qualified name must consist of"),
        ("!a=b", "expected: ',' or 'end of string'"),
    ],
)
def test_label_selector_bad_syntax(selector: str, fragment: str) -> None:
    with pytest.raises(APIError) as ei:
        parse_label_selector(selector)
    assert ei.value.code == 400
    assert ei.value.reason == "BadRequest"
    assert fragment in ei.value.message
    assert "unable to parse requirement" in ei.value.message


def test_label_key_and_value_validation() -> None:
    assert validate_label_key("app") == []
    assert validate_label_key("app.kubernetes.io/name") == []
    assert validate_label_key("x" * 63) == []
    assert validate_label_key("x" * 64) == ["name part must be no more than 63 characters"]
    assert validate_label_key("/a") == ["prefix part must be non-empty"]
    assert validate_label_key("a/") == ["name part must be non-empty"]
    assert validate_label_key("UPPER.com/a")
    assert validate_label_value("") == []
    assert validate_label_value("My_value-1.2") == []
    assert validate_label_value("_x")
    assert validate_label_value("x" * 64)


def test_format_labels() -> None:
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>"
    assert format_labels(None) == "<none>"


# ---------------------------------------------------------------------------
# Label selectors: structured form
# ---------------------------------------------------------------------------


def test_structured_selector() -> None:
    sel = label_selector_from_dict({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "team", "operator": "Exists"},
        ],
    })
    assert str(sel) == "app=web,!canary,env notin (prod),team,tier in (be,fe)"
    assert sel.matches({"app": "web", "tier": "fe", "team": "a"})
    assert not sel.matches({"app": "web", "tier": "fe"})  # team missing
    assert not sel.matches({"app": "web", "tier": "fe", "team": "a", "env": "prod"})
    assert not sel.matches({"app": "web", "tier": "fe", "team": "a", "canary": "1"})
    # Same meaning as the string form.
    assert sel == parse_label_selector("app=web,!canary,env notin (prod),team,tier in (be,fe)")


def test_structured_selector_null_vs_empty() -> None:
    none = label_selector_from_dict(None)
    assert not none.empty and none.match_nothing
    assert not none.matches({}) and not none.matches({"a": "b"})
    empty = label_selector_from_dict({})
    assert empty.empty and empty.matches({"a": "b"})


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Foo", "values": ["x"]}]}, 'Unsupported value: "Foo"'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "must be specified"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "may not be specified"),
        ({"matchExpressions": [{"operator": "Exists"}]}, "key: Required value"),
        ({"matchLabels": {"a": "-bad"}}, "a valid label must be"),
        ({"matchLabels": {"-bad": "x"}}, "name part must consist"),
    ],
)
def test_structured_selector_errors(selector: dict, fragment: str) -> None:
    with pytest.raises(APIError) as ei:
        label_selector_from_dict(selector)
    assert ei.value.code == 400 and fragment in ei.value.message


def test_label_selector_field_errors_carry_paths() -> None:
    errs = label_selector_errors(
        {"matchLabels": {"a": "-x"}, "matchExpressions": [{"key": "b", "operator": "In"}]}, "spec.selector"
    )
    assert [e.field for e in errs] == ["spec.selector.matchLabels", "spec.selector.matchExpressions[0].values"]
    assert label_selector_errors({"matchLabels": {"a": "b"}}) == []


def test_selector_from_set() -> None:
    sel = label_selector_from_set({"app": "web", "tier": "fe"})
    assert str(sel) == "app=web,tier=fe"
    assert sel.matches({"app": "web", "tier": "fe", "x": "y"})
    assert not sel.matches({"app": "web"})
    assert label_selector_from_set({}).empty


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

POD_FIELDS = BASE_FIELDS | {"spec.nodeName", "status.phase"}


def pod(name: str = "p", hash_key: int = 0, node: str = "", owners: list | None = None, **meta) -> dict:
    m = {"name": name, "namespace": "default", "tenant": "t1", "hashKey": hash_key, **meta}
    if owners is not None:
        m["ownerReferences"] = owners
    return {"metadata": m, "spec": {"nodeName": node}}


def fields_of(obj: dict) -> dict[str, str]:
    return {"spec.nodeName": obj["spec"]["nodeName"], "status.phase": "Running"}


def test_field_selector_basic_terms() -> None:
    sel = parse_field_selector("spec.nodeName=n1,metadata.namespace==default", POD_FIELDS)
    p1, p2 = pod(node="n1"), pod(node="n2")
    assert sel.matches(p1, fields_of(p1))
    assert not sel.matches(p2, fields_of(p2))
    ne = parse_field_selector("spec.nodeName!=", POD_FIELDS)  # the scheduler's "assigned pods"
    assert ne.matches(p1, fields_of(p1))
    unassigned = pod(node="")
    assert not ne.matches(unassigned, fields_of(unassigned))
    assert parse_field_selector("metadata.tenant=t1").matches(p1)
    assert not parse_field_selector("metadata.name!=p").matches(p1)


def test_field_selector_missing_field_is_empty_string() -> None:
    sel = parse_field_selector("status.phase=", POD_FIELDS)
    assert sel.matches(pod(), {})
    assert not sel.matches(pod(), {"status.phase": "Running"})


def test_field_selector_empty() -> None:
    for s in ("", None, ",", ";"):
        sel = parse_field_selector(s, POD_FIELDS)
        assert sel.empty and sel.matches(pod()) and str(sel) == ""
        assert sel.hash_range() is None and sel.exact("spec.nodeName") is None


def test_field_selector_escaping() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d\;e")
    assert sel.exact("metadata.name") == "a,b=c\\d;e"
    assert sel.matches(pod(name="a,b=c\\d;e"))
    assert str(sel) == r"metadata.name=a\,b\=c\\d\;e"
    assert escape_field_value("a,b=c\\d") == r"a\,b\=c\\d"
    assert parse_field_selector(str(sel)) == sel


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        (r"metadata.name=a\x", "invalid escape sequence: \\x"),
        ("metadata.name=a\\", "invalid escape sequence: \\"),
        ("metadata.name=a=b", "unescaped character in value"),
        ("metadata.name", "can't understand 'metadata.name'"),
        ("metadata.hashkey=gt:abc", "needs an integer value"),
        ("metadata.hashkey=lte:99999999999999999999", "out of int64 range"),
        ("metadata.name=gt:5", "only supported on hashkey fields"),
    ],
)
def test_field_selector_bad_syntax(selector: str, fragment: str) -> None:
    with pytest.raises(APIError) as ei:
        parse_field_selector(selector, POD_FIELDS)
    assert ei.value.code == 400 and fragment in ei.value.message


def test_field_selector_unknown_field() -> None:
    with pytest.raises(APIError) as ei:
        parse_field_selector("spec.nodeName=n1,spec.bogus=x", POD_FIELDS)
    assert ei.value.code == 400
    assert ei.value.message == "field label not supported: spec.bogus"
    # Kind-specific fields are not allowed for kinds that lack them.
    with pytest.raises(APIError):
        parse_field_selector("spec.nodeName=n1")
    # ...but hashKey fields always are.
    parse_field_selector("metadata.hashkey=gt:1,metadata.ownerReferences.hashkey.ReplicaSet=lte:5", set())


def test_selectable_fields() -> None:
    class Strategy:
        field_names = ("spec.nodeName",)

    class Info:
        strategy = Strategy()

    assert selectable_fields(Info()) == BASE_FIELDS | {"spec.nodeName"}
    assert selectable_fields(object()) == BASE_FIELDS


def test_field_selector_exact() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", POD_FIELDS)
    assert sel.exact("spec.nodeName") == "n1"
    assert sel.exact("status.phase") is None  # != pins nothing
    assert sel.needs_fields
    assert not parse_field_selector("metadata.name=x,metadata.hashkey=gt:3").needs_fields
    # Alternatives: only when all of them pin the same value.
    assert parse_field_selector("spec.nodeName=a,metadata.hashkey=gt:1;spec.nodeName=a", POD_FIELDS).exact(
        "spec.nodeName") == "a"
    assert parse_field_selector("spec.nodeName=a;spec.nodeName=b", POD_FIELDS).exact("spec.nodeName") is None


# -- hashKey ranges ------------------------------------------------------------


def test_hashkey_range_semantics() -> None:
    sel = parse_field_selector("metadata.hashkey=gt:-10,metadata.hashkey=lte:10")
    assert sel.hash_range() == (-10, 10)
    assert [hk for hk in range(-12, 13) if sel.matches(pod(hash_key=hk))] == list(range(-9, 11))


@pytest.mark.parametrize(
    ("selector", "expected_range", "inside", "outside"),
    [
        ("metadata.hashkey=gte:5,metadata.hashkey=lt:8", (4, 7), [5, 6, 7], [4, 8]),
        ("metadata.hashkey=5", (4, 5), [5], [4, 6]),
        ("metadata.hashkey==5", (4, 5), [5], [4, 6]),
        ("metadata.hashkey=gt:100", (100, HASHKEY_MAX), [101, HASHKEY_MAX], [100, 0]),
        ("metadata.hashkey=lte:100", (-(2**63) - 1, 100), [0, 100], [101]),
        # Two lower bounds: the tighter one wins.
        ("metadata.hashkey=gt:1,metadata.hashkey=gte:10,metadata.hashkey=lte:20", (9, 20), [10, 20], [9, 21]),
    ],
)
def test_hashkey_bounds(selector: str, expected_range: tuple, inside: list, outside: list) -> None:
    sel = parse_field_selector(selector)
    assert sel.hash_range() == expected_range
    assert all(sel.matches(pod(hash_key=h)) for h in inside)
    assert not any(sel.matches(pod(hash_key=h)) for h in outside)


def test_hashkey_not_equal_and_empty_interval() -> None:
    sel = parse_field_selector("metadata.hashkey!=5")
    assert sel.hash_range() is None
    assert sel.matches(pod(hash_key=4)) and not sel.matches(pod(hash_key=5))
    empty = parse_field_selector("metadata.hashkey=gt:10,metadata.hashkey=lte:10")
    lo, hi = empty.hash_range()
    assert lo >= hi
    assert not any(empty.matches(pod(hash_key=h)) for h in (9, 10, 11))


def test_hashkey_or_alternatives() -> None:
    # Arktos's reflector joins several ranges with ';'.
    sel = parse_field_selector("metadata.hashkey=gt:10000;metadata.hashkey=lte:100")
    assert sorted(sel.hash_ranges()) == [(-(2**63) - 1, 100), (10000, HASHKEY_MAX)]
    assert sel.hash_range() == (-(2**63) - 1, HASHKEY_MAX)  # the hull: a superset
    assert sel.matches(pod(hash_key=50)) and sel.matches(pod(hash_key=20000))
    assert not sel.matches(pod(hash_key=500))
    # Unbounded in one alternative: unbounded.
    assert parse_field_selector("metadata.hashkey=gt:1;metadata.name=x").hash_range() is None


def test_owner_reference_hashkey() -> None:
    sel = parse_field_selector("metadata.ownerReferences.hashkey.ReplicaSet=lte:100")
    owned = pod(owners=[{"kind": "Deployment", "hashKey": 5000}, {"kind": "ReplicaSet", "hashKey": 50}])
    assert sel.matches(owned)
    assert not sel.matches(pod(owners=[{"kind": "ReplicaSet", "hashKey": 101}]))
    # No owner of that kind: a range never matches.
    assert not sel.matches(pod(owners=[{"kind": "Deployment", "hashKey": 5}]))
    assert not sel.matches(pod())
    assert sel.hash_range() is None
    assert sel.hash_range("metadata.ownerReferences.hashkey.ReplicaSet") == (-(2**63) - 1, 100)
    eq = parse_field_selector("metadata.ownerReferences.hashkey.ReplicaSet=0")
    assert eq.matches(pod(owners=[{"kind": "ReplicaSet", "hashKey": 0}]))
    assert not eq.matches(pod(owners=[{"kind": "ReplicaSet", "hashKey": 1}]))
    ne = parse_field_selector("metadata.ownerReferences.hashkey.ReplicaSet!=0")
    assert ne.matches(pod()) and not ne.matches(pod(owners=[{"kind": "ReplicaSet", "hashKey": 0}]))


def test_field_selector_canonical_and_cached() -> None:
    a = parse_field_selector("metadata.hashkey=lte:10,metadata.hashkey=gt:+0")
    b = parse_field_selector("metadata.hashkey=gt:0,metadata.hashkey=lte:10")
    assert a == b and str(a) == "metadata.hashkey=gt:0,metadata.hashkey=lte:10"
    assert parse_field_selector("spec.nodeName=n1", POD_FIELDS) is parse_field_selector("spec.nodeName=n1",
                                                                                         POD_FIELDS)


# ---------------------------------------------------------------------------
# compute_hash_key
# ---------------------------------------------------------------------------


def test_compute_hash_key_range_and_spread() -> None:
    keys = [compute_hash_key(f"00000000-0000-0000-0000-{i:012d}") for i in range(4000)]
    assert all(0 <= k <= HASHKEY_MAX for k in keys)
    assert len(set(keys)) == len(keys)
    # Evenly split among 4 controller instances, each should own about a quarter.
    quarter = (HASHKEY_MAX + 1) // 4
    counts = [sum(1 for k in keys if i * quarter <= k < (i + 1) * quarter) for i in range(4)]
    assert all(800 < c < 1200 for c in counts), counts


def test_compute_hash_key_is_stable_across_processes() -> None:
    uid = "6f3c2d1e-8a9b-4c5d-9e0f-112233445566"
    out = subprocess.run(
        [sys.executable, "-c", f"from arktos.api.selectors import compute_hash_key; print(compute_hash_key({uid!r}))"],
        capture_output=True, text=True, check=True,
    )
    assert int(out.stdout) == compute_hash_key(uid)
    # Pinned: changing the function would move every object to another controller.
    assert compute_hash_key("abc") == 6393727014797677913
