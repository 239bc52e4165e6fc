"""ControllerRevisions of DaemonSets and StatefulSets: the history `kubectl rollout history|undo` reads.

As Kubernetes' controller history: one ControllerRevision per distinct pod
template, named `<owner>-<template hash>`, labelled with the template's labels
plus `controller-revision-hash` (kubectl finds them with the owner's selector
and keeps those the owner controls), `data` the strategic merge patch that
puts the template back (`{"spec": {"template": {..., "$patch": "replace"}}}`,
which is what `kubectl rollout undo` sends), `revision` one more than the
owner's highest so far.  Going back to an older template re-numbers its
revision to the top instead of making a copy.  Old revisions no live pod uses
are deleted beyond `spec.revisionHistoryLimit`.
"""

from __future__ import annotations

import copy
from typing import Any

from arktos.api.errors import APIError
from arktos.client import Client
from arktos.controllers._workloads import make_controller_ref
from arktos.controllers.base import builtin, is_gone

__all__ = ["CONTROLLER_REVISIONS", "REVISION_LABEL", "revision_data", "sync_revisions", "template_of"]

Obj = dict[str, Any]
CONTROLLER_REVISIONS = builtin("apps", "controllerrevisions")
REVISION_LABEL = "controller-revision-hash"


def revision_data(template: Any) -> Obj:
    t = copy.deepcopy(template) if isinstance(template, dict) else {}
    t["$patch"] = "replace"
    return {"spec": {"template": t}}


def template_of(revision: Obj | None) -> Obj | None:
    """The pod template a revision restores, or None."""
    t = (((revision or {}).get("data") or {}).get("spec") or {}).get("template")
    if not isinstance(t, dict):
        return None
    t = copy.deepcopy(t)
    t.pop("$patch", None)
    return t


def _num(rev: Obj) -> int:
    n = rev.get("revision")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


async def sync_revisions(client: Client, owner: Obj, kind: str, revisions: list[Obj], template_hash: str,
                         live: set[str]) -> tuple[Obj | None, list[Obj]]:
    """Make the owner's current template the highest revision; prune; (that revision, the owner's revisions).

    `revisions` are the ControllerRevisions the owner controls (from a cache);
    `live` the revision names some pod of the owner still runs.
    """
    meta = owner["metadata"]
    tenant, namespace, name = meta.get("tenant"), meta.get("namespace"), meta["name"]
    spec = owner.get("spec") or {}
    template = spec.get("template") or {}
    want = f"{name}-{template_hash}"
    revs = sorted(revisions, key=_num)
    top = _num(revs[-1]) if revs else 0
    current = next((r for r in revs if r["metadata"]["name"] == want), None)
    try:
        if current is None:
            labels = {**((template.get("metadata") or {}).get("labels") or {}), REVISION_LABEL: template_hash}
            body = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": want, "namespace": namespace, "labels": labels,
                                 "ownerReferences": [make_controller_ref(owner, "apps/v1", kind)]},
                    "data": revision_data(template), "revision": top + 1}
            try:
                current = await client.create(CONTROLLER_REVISIONS, body, tenant=tenant, namespace=namespace)
            except APIError as exc:
                if exc.code != 409:
                    raise
                current = await client.get(CONTROLLER_REVISIONS, want, tenant=tenant, namespace=namespace)
            revs.append(current)
        elif _num(current) < top:
            updated = copy.deepcopy(current)
            updated["revision"] = top + 1
            current = await client.update(CONTROLLER_REVISIONS, updated, tenant=tenant, namespace=namespace)
            revs = [current if r["metadata"]["name"] == want else r for r in revs]
    except APIError as exc:
        if is_gone(exc) or exc.code == 409:
            return None, revs  # a newer copy is on its way through the informer
        raise
    limit = spec.get("revisionHistoryLimit")
    limit = limit if isinstance(limit, int) and limit >= 0 else 10
    old = [r for r in sorted(revs, key=_num) if r["metadata"]["name"] != want and r["metadata"]["name"] not in live]
    for r in old[: max(len(old) - limit, 0)]:
        try:
            await client.delete(CONTROLLER_REVISIONS, r["metadata"]["name"], tenant=tenant, namespace=namespace,
                                preconditions={"uid": r["metadata"]["uid"]})
        except APIError as exc:
            if not (is_gone(exc) or exc.code == 409):
                raise
        revs = [x for x in revs if x is not r]
    return current, revs
