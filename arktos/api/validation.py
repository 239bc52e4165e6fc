"""Validators shared by every kind: names, labels, annotations, object metadata.

The checks and their messages are Kubernetes' (apimachinery's
`util/validation` and `api/validation`), because kubectl users and client
libraries read these messages and because objects valid on Kubernetes must be
valid here and the other way round.  Arktos adds the tenant level: a tenant
name is a DNS-1123 label and `all` is reserved for listing across tenants.

Two layers, like Kubernetes:
- `is_*` functions take a string and return a list of problem descriptions
  (empty when valid), so they compose into any field's error;
- `validate_*` functions take a value and its field path and return
  `FieldError`s ready for a 422 Invalid response.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from arktos.api.errors import FieldError, forbidden, invalid, required

# A name validator, as Kubernetes' ValidateNameFunc: (name, is_prefix) -> problems.
# `is_prefix` is True when checking metadata.generateName, which may end in "-"
# because random characters are appended after it.
NameValidator = Callable[[str, bool], list[str]]

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
FIELD_IMMUTABLE = "field is immutable"

# Tenant names that cannot be used for a tenant (ARKTOS.md section 1).
RESERVED_TENANT_NAMES = frozenset({"all"})

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_MAP_KEY_RE = re.compile(_CONFIG_MAP_KEY_FMT)
_ENV_VAR_NAME_RE = re.compile(_ENV_VAR_NAME_FMT)
_C_IDENTIFIER_RE = re.compile(_C_IDENTIFIER_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_ENV_VAR_NAME_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
    "or '.', and must not start with a digit"
)
_C_IDENTIFIER_MSG = (
    "a valid C identifier must start with alphabetic character or '_', followed by a string of "
    "alphanumeric characters or '_'"
)

# Finalizers Kubernetes knows without a domain prefix.
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"


# --------------------------------------------------------------------------- messages


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Kubernetes' RegexError text (examples separated exactly as upstream does)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    parts = [f"'{e}', " for e in examples]
    return f"{msg} (e.g. {' or '.join(parts)}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


# --------------------------------------------------------------------------- string checks


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: `[prefix/]name`, prefix a DNS subdomain."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(
            "name part " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    """Keys of ConfigMap/Secret data: they become file names, so no '..' tricks."""
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_MAP_KEY_RE.fullmatch(value):
        errs.append(regex_error(_CONFIG_MAP_KEY_MSG, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    errs.extend(_dot_errors(value))
    return errs


def _dot_errors(value: str) -> list[str]:
    """Keys that become file names (ConfigMap keys, env names as keys) may not be '.' or '..'."""
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(value: str) -> list[str]:
    errs = []
    if not _ENV_VAR_NAME_RE.fullmatch(value):
        errs.append(regex_error(_ENV_VAR_NAME_MSG, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    errs.extend(_dot_errors(value))
    return errs


def is_c_identifier(value: str) -> list[str]:
    if _C_IDENTIFIER_RE.fullmatch(value):
        return []
    return [regex_error(_C_IDENTIFIER_MSG, _C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]


def is_valid_port_name(value: str) -> list[str]:
    """An IANA_SVC_NAME: what container and service ports may be named."""
    errs = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_port_num(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def is_valid_ip(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def is_valid_cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


def is_valid_path_segment_name(value: str) -> list[str]:
    """RBAC names: anything that can be one URL path segment (e.g. "system:node")."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


# --------------------------------------------------------------------------- name validators


def _mask_trailing_dash(name: str) -> str:
    """generateName may end in '-': the random suffix makes the final name valid."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    """The default name rule: Pods, ConfigMaps, Deployments, Nodes, ..."""
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    """Names that become one DNS label: Namespaces."""
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    """Names that must start with a letter: Services (they become DNS names)."""
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool = False) -> list[str]:
    """RBAC object names, which may contain ':' (e.g. "system:controller:foo")."""
    if prefix:
        return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    return is_valid_path_segment_name(name)


def name_is_tenant(name: str, prefix: bool = False) -> list[str]:
    """Tenant names: a DNS-1123 label that is not a reserved word such as `all`."""
    errs = name_is_dns_label(name, prefix)
    if not prefix and name in RESERVED_TENANT_NAMES:
        errs.append(f'"{name}" is reserved and may not be used as a tenant name')
    return errs


# --------------------------------------------------------------------------- field validators


def _errs(path: str, value: Any, msgs: list[str]) -> list[FieldError]:
    return [invalid(path, value, m) for m in msgs]


def validate_dns1123_label(value: str, path: str) -> list[FieldError]:
    return _errs(path, value, is_dns1123_label(value))


def validate_dns1123_subdomain(value: str, path: str) -> list[FieldError]:
    return _errs(path, value, is_dns1123_subdomain(value))


def validate_dns1035_label(value: str, path: str) -> list[FieldError]:
    return _errs(path, value, is_dns1035_label(value))


def validate_qualified_name(value: str, path: str) -> list[FieldError]:
    return _errs(path, value, is_qualified_name(value))


def validate_tenant_name(value: str, path: str = "metadata.tenant") -> list[FieldError]:
    return _errs(path, value, name_is_tenant(value))


def validate_namespace_name(value: str, path: str = "metadata.namespace") -> list[FieldError]:
    return _errs(path, value, name_is_dns_label(value))


def validate_nonnegative(value: Any, path: str) -> list[FieldError]:
    """An optional integer field that must be >= 0 (replicas, seconds, ...)."""
    if value is None:
        return []
    if not _is_int(value):
        return [FieldError(path, "FieldValueTypeInvalid", "must be an integer", value)]
    if value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def validate_positive(value: Any, path: str) -> list[FieldError]:
    if value is None:
        return []
    if not _is_int(value):
        return [FieldError(path, "FieldValueTypeInvalid", "must be an integer", value)]
    if value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_error(path: str, value: Any, what: str) -> FieldError:
    return FieldError(path, "FieldValueTypeInvalid", f"must be {what}", value)


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    """Label keys are qualified names, values label values (both reported at `path`)."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [_type_error(path, labels, "an object of string keys and values")]
    errs: list[FieldError] = []
    for k, v in labels.items():
        errs.extend(_errs(path, k, is_qualified_name(k)))
        if not isinstance(v, str):
            errs.append(_type_error(path, v, "a string"))
        else:
            errs.extend(_errs(path, v, is_valid_label_value(v)))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    """Keys are qualified names (case-insensitively); all keys and values fit in 256 KiB.

    The size limit counts UTF-8 bytes of every key and value together, so one
    object cannot make etcd and every watcher carry megabytes of annotations.
    """
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [_type_error(path, annotations, "an object of string keys and values")]
    errs: list[FieldError] = []
    total = 0
    for k, v in annotations.items():
        errs.extend(_errs(path, k, is_qualified_name(k.lower())))
        if not isinstance(v, str):
            errs.append(_type_error(path, v, "a string"))
            continue
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(FieldError(path, "FieldValueTooLong", f"must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
    return errs


def validate_finalizers(finalizers: Any, path: str) -> list[FieldError]:
    """metadata.finalizers: qualified names; `orphan` and `foregroundDeletion` exclude each other."""
    if finalizers is None:
        return []
    if not isinstance(finalizers, list):
        return [_type_error(path, finalizers, "a list of strings")]
    errs: list[FieldError] = []
    for f in finalizers:
        if not isinstance(f, str):
            errs.append(_type_error(path, f, "a string"))
            continue
        errs.extend(_errs(path, f, is_qualified_name(f)))
    if FINALIZER_ORPHAN in finalizers and FINALIZER_FOREGROUND in finalizers:
        errs.append(
            invalid(path, finalizers, f"finalizer {FINALIZER_ORPHAN} and {FINALIZER_FOREGROUND} cannot be both set")
        )
    return errs


def validate_spec_finalizer_name(name: Any, path: str) -> list[FieldError]:
    """Namespace/Tenant spec.finalizers: a standard name or a domain-qualified one."""
    if not isinstance(name, str):
        return [_type_error(path, name, "a string")]
    errs = _errs(path, name, is_qualified_name(name))
    if not errs and "/" not in name and name not in STANDARD_FINALIZERS:
        errs.append(invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    """Every reference names its owner completely; at most one is the controller.

    Errors are reported at `metadata.ownerReferences.<field>` without an index,
    as Kubernetes does.
    """
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [_type_error(path, refs, "a list")]
    errs: list[FieldError] = []
    controller = ""
    for ref in refs:
        if not isinstance(ref, Mapping):
            errs.append(_type_error(path, ref, "an object"))
            continue
        api_version = ref.get("apiVersion") or ""
        version = api_version.rpartition("/")[2] if isinstance(api_version, str) else ""
        if not version:
            errs.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not ref.get("kind"):
            errs.append(invalid(f"{path}.kind", ref.get("kind") or "", "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(f"{path}.name", ref.get("name") or "", "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(f"{path}.uid", ref.get("uid") or "", "uid must not be empty"))
        if "hashKey" in ref and not _is_int(ref["hashKey"]):
            errs.append(_type_error(f"{path}.hashKey", ref["hashKey"], "an integer"))
        if ref.get("controller") is True:
            if controller:
                errs.append(
                    invalid(
                        path,
                        refs,
                        'Only one reference can have Controller set to true. Found "true" in references '
                        f"for {controller} and {ref.get('name')}",
                    )
                )
            else:
                controller = str(ref.get("name"))
    return errs


def validate_object_meta(
    meta: Any,
    *,
    namespaced: bool,
    tenanted: bool,
    name_validator: NameValidator | None = None,
    path: str = "metadata",
) -> list[FieldError]:
    """Checks every object's metadata gets on create, before any kind-specific check.

    `name_validator` is the kind's name rule (see the `name_is_*` functions;
    every strategy in `arktos.api.strategies` carries its own as
    `strategy.name_validator`); the default is a DNS-1123 subdomain.
    A name is required unless generateName is given (the server derives the
    name from it).  Tenant and namespace must be present exactly when the kind
    lives in them.
    """
    if not isinstance(meta, Mapping):
        return [required(path)]
    check_name = name_validator or name_is_dns_subdomain
    errs: list[FieldError] = []
    name = meta.get("name") or ""
    generate_name = meta.get("generateName") or ""
    if not isinstance(generate_name, str):
        errs.append(_type_error(f"{path}.generateName", generate_name, "a string"))
    elif generate_name:
        errs.extend(_errs(f"{path}.generateName", generate_name, check_name(generate_name, True)))
    if not isinstance(name, str):
        errs.append(_type_error(f"{path}.name", name, "a string"))
    elif not name:
        if not generate_name:
            errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(_errs(f"{path}.name", name, check_name(name, False)))

    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        elif not isinstance(namespace, str):
            errs.append(_type_error(f"{path}.namespace", namespace, "a string"))
        else:
            errs.extend(validate_namespace_name(namespace, f"{path}.namespace"))
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))

    tenant = meta.get("tenant") or ""
    if tenanted:
        if not tenant:
            errs.append(required(f"{path}.tenant"))
        elif not isinstance(tenant, str):
            errs.append(_type_error(f"{path}.tenant", tenant, "a string"))
        else:
            errs.extend(validate_tenant_name(tenant, f"{path}.tenant"))
    elif tenant:
        errs.append(forbidden(f"{path}.tenant", "not allowed on this type"))

    generation = meta.get("generation")
    if generation is not None:
        errs.extend(validate_nonnegative(generation, f"{path}.generation"))
    hash_key = meta.get("hashKey")
    if hash_key is not None and not _is_int(hash_key):
        errs.append(_type_error(f"{path}.hashKey", hash_key, "an integer"))

    errs.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    errs.extend(validate_finalizers(meta.get("finalizers"), f"{path}.finalizers"))
    return errs


# Set by the server and never changed afterwards.
_IMMUTABLE_META = ("name", "namespace", "tenant", "uid", "creationTimestamp", "hashKey")


def validate_object_meta_update(new: Any, old: Any, *, path: str = "metadata") -> list[FieldError]:
    """Checks on the metadata of an update (main resource or subresource alike).

    Identity fields cannot change; generation only grows; an object already
    being deleted cannot gain finalizers (it would never go away); and the
    mutable parts (labels, annotations, owners, finalizers) are checked as on
    create.  deletionTimestamp/deletionGracePeriodSeconds are the store's to
    manage and are not judged here.
    """
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return [required(path)]
    errs: list[FieldError] = []
    for key in _IMMUTABLE_META:
        if (new.get(key) or None) != (old.get(key) or None):
            errs.append(invalid(f"{path}.{key}", new.get(key), FIELD_IMMUTABLE))
    new_gen, old_gen = new.get("generation"), old.get("generation")
    if _is_int(new_gen) and _is_int(old_gen) and new_gen < old_gen:
        errs.append(invalid(f"{path}.generation", new_gen, "must not be decremented"))
    if old.get("deletionTimestamp"):
        old_fin = set(old.get("finalizers") or [])
        added = [f for f in new.get("finalizers") or [] if f not in old_fin]
        if added:
            errs.append(
                forbidden(
                    f"{path}.finalizers",
                    f"no new finalizers can be added if the object is being deleted, found new finalizers {added}",
                )
            )
    errs.extend(validate_labels(new.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(new.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_owner_references(new.get("ownerReferences"), f"{path}.ownerReferences"))
    errs.extend(validate_finalizers(new.get("finalizers"), f"{path}.finalizers"))
    return errs


def validate_immutable(new: Any, old: Any, path: str) -> list[FieldError]:
    """`field is immutable` when `new` differs from `old`."""
    return [] if new == old else [invalid(path, new, FIELD_IMMUTABLE)]


def validate_label_selector(selector: Any, path: str) -> list[FieldError]:
    """A metav1.LabelSelector (matchLabels + matchExpressions), as workloads use."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [_type_error(path, selector, "an object")]
    errs = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        return [*errs, _type_error(f"{path}.matchExpressions", exprs, "a list")]
    for i, expr in enumerate(exprs):
        p = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            errs.append(_type_error(p, expr, "an object"))
            continue
        op, values = expr.get("operator"), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(
                    forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
                )
        else:
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        key = expr.get("key")
        if not isinstance(key, str):
            errs.append(_type_error(f"{p}.key", key, "a string"))
        else:
            errs.extend(_errs(f"{p}.key", key, is_qualified_name(key)))
    return errs


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    """Whether `labels` satisfy a metav1.LabelSelector (an empty selector matches all)."""
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def label_selector_string(selector: Mapping[str, Any] | None) -> str:
    """The selector in label-selector query syntax ("app=web,tier in (a,b)"), sorted by key.

    This is what Kubernetes puts in a Scale's status.selector and what
    `?labelSelector=` accepts, so an autoscaler can list the pods.
    """
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op)
        if text is not None:
            reqs.append((key, text))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)
