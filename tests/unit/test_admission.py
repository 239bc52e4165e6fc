"""Admission rules that do not need a server: the system tenant alone writes cluster-scoped kinds."""

from __future__ import annotations

import pytest

from arktos.api.errors import APIError
from arktos.api.resources import builtin_registry
from arktos.apiserver.admission import Lifecycle
from arktos.apiserver.auth import UserInfo
from arktos.apiserver.store import Ctx

REGISTRY = builtin_registry()


@pytest.mark.parametrize("plural", ["nodes", "tenants", "controllerinstances"])
async def test_tenant_users_never_write_cluster_scoped_kinds(plural):
    info = REGISTRY.get("", "v1", plural)
    lifecycle = Lifecycle(caches=None, etcd=None)  # type: ignore[arg-type] - the rule needs neither
    user = UserInfo("mallory", "acme", ("system:masters",))
    for op, obj, old in (("CREATE", {"metadata": {"name": "x"}}, None),
                         ("UPDATE", {"metadata": {"name": "x"}}, {"metadata": {"name": "x"}}),
                         ("DELETE", None, {"metadata": {"name": "x"}})):
        with pytest.raises(APIError) as err:
            await lifecycle(op, info, Ctx(user, ""), obj, old)
        assert err.value.code == 403
