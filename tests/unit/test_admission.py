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


async def test_pods_get_the_kube_api_access_volume_unless_they_opt_out():
    from arktos.apiserver.admission import SA_MOUNT_PATH, _ServiceAccountDefault

    pods = REGISTRY.get("", "v1", "pods")
    ctx = Ctx(UserInfo("u", "acme", ()), "acme", "default")
    mounting = _ServiceAccountDefault(mount_tokens=True)
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {
        "initContainers": [{"name": "i", "image": "x"}],
        "containers": [{"name": "a", "image": "x"},
                       {"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": SA_MOUNT_PATH}]}]}}
    await mounting("CREATE", pods, ctx, pod, None)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    [vol] = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    sources = vol["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mount = {"name": vol["name"], "readOnly": True, "mountPath": SA_MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount] and spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "own", "mountPath": SA_MOUNT_PATH}]  # its own stays

    opted_out = {"metadata": {"name": "q"}, "spec": {"automountServiceAccountToken": False,
                                                     "containers": [{"name": "a", "image": "x"}]}}
    await mounting("CREATE", pods, ctx, opted_out, None)
    assert "volumes" not in opted_out["spec"] and "volumeMounts" not in opted_out["spec"]["containers"][0]
    # A server that issues no bound tokens (the development mode) mounts none.
    plain = {"metadata": {"name": "r"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    await _ServiceAccountDefault()("CREATE", pods, ctx, plain, None)
    assert "volumes" not in plain["spec"] and plain["spec"]["serviceAccountName"] == "default"
