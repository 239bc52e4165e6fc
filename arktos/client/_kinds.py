"""Built-in kinds the client itself needs (Lease, Event), from the one registry of built-ins."""

from __future__ import annotations

from arktos.api.registry import ResourceInfo
from arktos.api.resources import BUILTIN


def builtin_info(group: str, plural: str) -> ResourceInfo:
    for info in BUILTIN:
        if info.group == group and info.plural == plural:
            return info
    raise LookupError(f"no built-in resource {plural}.{group}")
