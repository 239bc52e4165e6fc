"""Per-kind behaviour plugged into the one generic store.

Like Kubernetes' registry strategies: the generic store does what every kind
shares (metadata, concurrency, storage, watch); a `Strategy` says what differs
(defaults, validation, which part of the object the status subresource owns,
which fields can be selected on).  A strategy works on plain dicts decoded from
JSON and never touches storage, so it stays pure and testable.
"""

from __future__ import annotations

from typing import Any

from arktos.api.errors import FieldError
from arktos.api.validation import NameValidator, name_is_dns_subdomain

Obj = dict[str, Any]


class Strategy:
    # True when the kind has a status subresource: a main-resource write keeps
    # the stored status, a status write keeps everything but the status.
    status_subresource: bool = False
    # True when spec changes bump metadata.generation.
    tracks_generation: bool = True
    # Extra field-selector names this kind supports beyond the metadata ones.
    field_names: tuple[str, ...] = ()
    # The kind's rule for metadata.name (most kinds: a DNS-1123 subdomain).
    name_validator: NameValidator = staticmethod(name_is_dns_subdomain)  # type: ignore[assignment]

    def default(self, obj: Obj) -> None:
        """Fill defaults in place, on create and update alike."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a client may not set on create (usually status)."""
        if self.status_subresource:
            obj.pop("status", None)

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        """Carry over what a main-resource update may not change."""
        if self.status_subresource:
            if "status" in old:
                obj["status"] = old["status"]
            else:
                obj.pop("status", None)

    def prepare_for_status_update(self, obj: Obj, old: Obj) -> Obj:
        """Return the object to store for a write to the status subresource.

        Everything but the status comes from the stored object, metadata
        included (as Kubernetes' ResetObjectMetaForStatus does), so a status
        writer can never change a spec or labels by accident.
        """
        new = {k: v for k, v in old.items() if k != "status"}
        if "status" in obj:
            new["status"] = obj["status"]
        return new

    def validate(self, obj: Obj) -> list[FieldError]:
        """Kind-specific checks on create (metadata is checked by the store)."""
        return []

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        """Kind-specific checks on update; by default the create checks."""
        return self.validate(obj)

    def spec_changed(self, obj: Obj, old: Obj) -> bool:
        """Whether this update should bump metadata.generation."""
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }

    # True for Namespace and Tenant: their spec.finalizers also hold deletion back,
    # until their controller has emptied them and called the finalize subresource.
    spec_finalizers: bool = False

    def deletion_held(self, obj: Obj) -> bool:
        """Whether finalizers keep a deleted object stored (so it only gets a deletionTimestamp)."""
        if obj.get("metadata", {}).get("finalizers"):
            return True
        return self.spec_finalizers and bool((obj.get("spec") or {}).get("finalizers"))

    def fields(self, obj: Obj) -> dict[str, str]:
        """Values of the kind-specific selectable fields (see `field_names`)."""
        return {}


def drop_nulls(obj: Any) -> Any:
    """Remove `null` members of objects, at any depth, in place; returns `obj`.

    A built-in kind is a Go struct: a JSON `null` decodes to the zero value, which
    `omitempty` leaves out when the object is written back, so Kubernetes never
    stores or returns an explicit null ({"labels": null} reads back without
    labels).  Custom resources keep theirs: their schema decides (`nullable`)."""
    if isinstance(obj, dict):
        for key in [k for k, v in obj.items() if v is None]:
            del obj[key]
        for value in obj.values():
            drop_nulls(value)
    elif isinstance(obj, list):
        for item in obj:
            drop_nulls(item)
    return obj
