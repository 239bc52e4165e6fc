"""API errors and their wire form, the `meta.k8s.io/v1` Status object.

Clients branch on `reason` and `code` (kubectl prints `message`, client-go's
`IsNotFound` looks at the reason), so every failure the server can produce is
one of these, never a bare HTTP error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    """One invalid field: `field` is a path like `spec.containers[0].name`."""

    field: str
    type: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    detail: str = ""
    value: Any = None

    def message(self) -> str:
        text = {
            "FieldValueRequired": "Required value",
            "FieldValueInvalid": "Invalid value",
            "FieldValueNotSupported": "Unsupported value",
            "FieldValueForbidden": "Forbidden",
            "FieldValueDuplicate": "Duplicate value",
            "FieldValueTooLong": "Too long",
            "FieldValueTypeInvalid": "Invalid value",
        }.get(self.type, "Invalid value")
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate") and (
            self.value is not None
        ):
            text = f"{text}: {_quote(self.value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return f"{self.field}: {text}"


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", detail, value)


def not_supported(path: str, value: Any, allowed: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{a}"' for a in allowed)
    return FieldError(path, "FieldValueNotSupported", detail, value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueForbidden", detail)


@dataclass
class APIError(Exception):
    """An error that becomes a Status response."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(kind: str, name: str, group: str = "", causes: list | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if causes:
        d["causes"] = causes
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> APIError:
    return APIError(
        404, "NotFound", f'{_qualified(resource, group)} "{name}" not found', _details(resource, name, group)
    )


def already_exists(resource: str, name: str, group: str = "") -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        _details(resource, name, group),
    )


def conflict(resource: str, name: str, group: str = "", why: str = "") -> APIError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        _details(resource, name, group),
    )


def invalid_object(kind: str, name: str, errors: list[FieldError], group: str = "") -> APIError:
    causes = [{"reason": e.type, "message": e.message().split(": ", 1)[1], "field": e.field} for e in errors]
    summary = ", ".join(e.message() for e in errors)
    shown = f'{kind}.{group} "{name}"' if group else f'{kind} "{name}"'
    return APIError(422, "Invalid", f"{shown} is invalid: [{summary}]" if len(errors) > 1 else
                    f"{shown} is invalid: {summary}", _details(kind, name, group, causes))


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def forbidden_error(message: str, resource: str = "", name: str = "", group: str = "") -> APIError:
    return APIError(403, "Forbidden", message, _details(resource, name, group) if resource else None)


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format: {content_type}')


def too_large(limit: int) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"the request body is larger than the limit of {limit} bytes")


def too_large_object(detail: str) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"the object is too large to store: {detail}")


def not_acceptable(message: str) -> APIError:
    return APIError(406, "NotAcceptable", message)


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", message)


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)


def unavailable(message: str) -> APIError:
    return APIError(503, "ServiceUnavailable", message)
