"""The agent's volume writer and resolver (arktos.agent.volumes), with a fake API client."""

from __future__ import annotations

import base64
import os
import threading

import pytest

from arktos.agent.runtime import SPEC_HASH, container_hash
from arktos.agent.volumes import AtomicWriter, VolumeManager, WriteError
from arktos.api.errors import APIError


def test_writer_writes_modes_and_links(tmp_path):
    w = AtomicWriter(tmp_path / "v")
    assert w.write({"a": (b"1", 0o644), "dir/b": (b"2", 0o400)})
    v = tmp_path / "v"
    assert (v / "a").read_text() == "1" and (v / "dir" / "b").read_text() == "2"
    assert os.readlink(v / "a") == "..data/a" and os.readlink(v / "dir") == "..data/dir"
    assert os.readlink(v / "..data").startswith("..20")
    assert (v / "a").stat().st_mode & 0o777 == 0o644 and (v / "dir" / "b").stat().st_mode & 0o777 == 0o400
    assert not w.write({"a": (b"1", 0o644), "dir/b": (b"2", 0o400)})  # unchanged: nothing written


def test_writer_swaps_atomically_and_removes_what_went(tmp_path):
    v = tmp_path / "v"
    w = AtomicWriter(v)
    w.write({"a": (b"old-a", 0o644), "b": (b"old-b", 0o644)})
    first = os.readlink(v / "..data")
    # A reader holding both files sees one version of the pair, never a mix.
    stop = threading.Event()
    seen: set[tuple[str, str]] = set()

    def read() -> None:
        while not stop.is_set():
            try:
                base = v / os.readlink(v / "..data")
                seen.add(((base / "a").read_text(), (base / "b").read_text()))
            except (FileNotFoundError, OSError):
                pass

    t = threading.Thread(target=read)
    t.start()
    for i in range(30):
        w.write({"a": (f"a{i}".encode(), 0o644), "b": (f"b{i}".encode(), 0o644)})
    stop.set()
    t.join()
    assert all(a[1:] == b[1:] or (a, b) == ("old-a", "old-b") for a, b in seen), seen
    w.write({"c": (b"3", 0o600)})
    assert sorted(os.listdir(v)) == sorted(["..data", os.readlink(v / "..data"), "c"])
    assert first not in os.listdir(v)
    assert (v / "c").stat().st_mode & 0o777 == 0o600


def test_writer_refuses_escaping_paths(tmp_path):
    w = AtomicWriter(tmp_path / "v")
    for bad in ("../x", "/etc/passwd", "a/../../x", "..data"):
        with pytest.raises(WriteError):
            w.write({bad: (b"", 0o644)})


class FakeClient:
    def __init__(self, objects: dict[tuple[str, str], dict]) -> None:
        self.objects = dict(objects)
        self.gets: list[tuple[str, str, str | None, str | None]] = []
        self.tokens: list[dict] = []

    async def get(self, info, name, *, tenant=None, namespace=None):
        self.gets.append((info.plural, name, tenant, namespace))
        obj = self.objects.get((info.plural, name))
        if obj is None:
            raise APIError(404, "NotFound", f'{info.plural} "{name}" not found')
        return obj

    async def create_subresource(self, info, name, sub, body, *, tenant=None, namespace=None):
        self.tokens.append({"sa": name, "tenant": tenant, "namespace": namespace, **body["spec"]})
        return {"status": {"token": f"tok-{len(self.tokens)}", "expirationTimestamp": "2099-01-01T00:00:00Z"}}


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def pod(**spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "tenant": "t1", "uid": "u1", "labels": {"b": "2", "a": "1"},
                         "annotations": {"x": 'say "hi"'}},
            "spec": {"serviceAccountName": "sa", **spec}}


OBJECTS = {("configmaps", "cm"): {"data": {"k1": "v1", "k2": "$(HOME) v2"}, "binaryData": {"bin": _b64("\x00b")}},
           ("secrets", "sec"): {"data": {"user": _b64("admin"), "pass": _b64("s3cret")}}}


async def test_volumes_items_modes_and_hostpaths(tmp_path):
    client = FakeClient(OBJECTS)
    vm = VolumeManager(tmp_path, tmpfs=False, allocatable=lambda: {"cpu": "4", "memory": "8Gi"})
    p = pod(volumes=[
        {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 0o644}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o644,
                                   "items": [{"key": "pass", "path": "creds/password", "mode": 0o400}]}},
        {"name": "dapi", "downwardAPI": {"defaultMode": 0o644, "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "ann", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "tenant", "fieldRef": {"fieldPath": "metadata.tenant"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory",
                                                 "divisor": "1Mi"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}}]}},
        {"name": "scratch", "emptyDir": {}}],
        containers=[{"name": "c", "image": "busybox", "resources": {"limits": {"memory": "64Mi"}},
                     "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "scratch", "mountPath": "/s"}]}])
    got = await vm.prepare(p, client)
    assert not got.blocked and got.refresh
    vols = {v["name"]: v for v in got.pod["spec"]["volumes"]}
    base = tmp_path / "pods" / "u1" / "volumes"
    assert vols["cfg"]["hostPath"] == {"path": str(base / "configmap" / "cfg"), "type": "Directory"}
    assert vols["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert (base / "configmap" / "cfg" / "k2").read_text() == "$(HOME) v2"
    assert (base / "configmap" / "cfg" / "bin").read_bytes() == b"\x00b"
    assert sorted(os.listdir(base / "secret" / "sec"))[-1] == "creds"
    pw = base / "secret" / "sec" / "creds" / "password"
    assert pw.read_text() == "s3cret" and pw.stat().st_mode & 0o777 == 0o400
    d = base / "downward-api" / "dapi"
    assert (d / "labels").read_text() == 'a="1"\nb="2"'
    assert (d / "ann").read_text() == 'x="say \\"hi\\""'
    assert (d / "tenant").read_text() == "t1" and (d / "mem").read_text() == "64" and (d / "cpu").read_text() == "4"
    assert (tmp_path / "pods" / "u1").stat().st_mode & 0o777 == 0o700
    c = got.pod["spec"]["containers"][0]
    assert c["volumeMounts"][0]["readOnly"] is True and "readOnly" not in c["volumeMounts"][1]
    assert c[SPEC_HASH] == container_hash(p["spec"]["containers"][0])
    assert p["spec"]["volumes"][0]["configMap"]  # the informer's object is never touched
    # Every fetch went to the pod's own tenant and namespace.
    assert {(t, n) for _, _, t, n in client.gets} == {("t1", "ns")}
    # A change shows up once the TTL has passed; the forgotten pod leaves nothing.
    client.objects[("configmaps", "cm")] = {"data": {"k1": "new"}}
    vm.ttl = 0
    await vm.prepare(p, client)
    assert (base / "configmap" / "cfg" / "k1").read_text() == "new"
    assert not (base / "configmap" / "cfg" / "k2").exists()
    vm.forget("u1")
    assert not (tmp_path / "pods" / "u1").exists()


async def test_env_from_configmaps_and_secrets():
    client = FakeClient(OBJECTS)
    vm = VolumeManager(None)
    c = {"name": "c", "image": "busybox",
         "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                     {"secretRef": {"name": "gone", "optional": True}}],
         "env": [{"name": "CM_K1", "value": "literal wins"},
                 {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "user"}}},
                 {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": True}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    got = await vm.prepare(pod(containers=[c]), client)
    assert not got.blocked and not got.refresh
    rc = got.pod["spec"]["containers"][0]
    assert "envFrom" not in rc
    assert rc["env"] == [{"name": "CM_bin", "value": "\x00b"}, {"name": "CM_k1", "value": "v1"},
                         {"name": "CM_k2", "value": "$$(HOME) v2"},
                         {"name": "CM_K1", "value": "literal wins"}, {"name": "USER", "value": "admin"},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    assert rc[SPEC_HASH] == container_hash(c)


@pytest.mark.parametrize(("env", "why"), [
    ({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}, 'configmap "x" not found'),
    ({"name": "X", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}, 'secret "x" not found'),
    ({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
     "couldn't find key k in ConfigMap ns/cm"),
])
async def test_missing_required_env(env, why):
    got = await VolumeManager(None).prepare(pod(containers=[{"name": "c", "env": [env]}, {"name": "ok"}]),
                                            FakeClient(OBJECTS))
    assert got.env_errors == {"c": why} and not got.mount_error
    assert [c["name"] for c in got.pod["spec"]["containers"]] == ["ok"]  # the waiting one is not handed over


async def test_missing_volume_blocks_the_pod_unless_optional(tmp_path):
    vm = VolumeManager(tmp_path, tmpfs=False)
    got = await vm.prepare(pod(volumes=[{"name": "v", "configMap": {"name": "x"}}], containers=[{"name": "c"}]),
                           FakeClient(OBJECTS))
    assert (got.mount_error, got.volume) == ('configmap "x" not found', "v")
    got = await vm.prepare(pod(volumes=[{"name": "v", "configMap": {"name": "x", "optional": True}}],
                               containers=[{"name": "c"}]), FakeClient(OBJECTS))
    assert not got.blocked
    v = tmp_path / "pods" / "u1" / "volumes" / "configmap" / "v"
    assert sorted(os.listdir(v)) == sorted(["..data", os.readlink(v / "..data")])  # an empty volume
    got = await vm.prepare(pod(volumes=[{"name": "v", "secret": {"secretName": "sec", "items": [{"key": "no"}]}}],
                               containers=[{"name": "c"}]), FakeClient(OBJECTS))
    assert got.mount_error == "secret references non-existent secret key: no"


async def test_projected_kube_api_access(tmp_path):
    client = FakeClient({**OBJECTS, ("configmaps", "kube-root-ca.crt"): {"data": {"ca.crt": "PEM"}}})
    vm = VolumeManager(tmp_path, tmpfs=False)
    p = pod(volumes=[{"name": "kube-api-access", "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token", "audience": "api"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}],
        containers=[{"name": "c"}])
    got = await vm.prepare(p, client)
    d = tmp_path / "pods" / "u1" / "volumes" / "projected" / "kube-api-access"
    assert not got.blocked
    assert {f: (d / f).read_text() for f in ("token", "ca.crt", "namespace")} == {
        "token": "tok-1", "ca.crt": "PEM", "namespace": "ns"}
    assert client.tokens == [{"sa": "sa", "tenant": "t1", "namespace": "ns", "audiences": ["api"],
                              "expirationSeconds": 3607,
                              "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u1"}}]
    await vm.prepare(p, client)
    assert len(client.tokens) == 1  # still fresh: not asked again


async def test_orphaned_pod_volumes_are_removed(tmp_path):
    vm = VolumeManager(tmp_path, tmpfs=False)
    for uid in ("kept", "gone"):
        p = pod(volumes=[{"name": "v", "configMap": {"name": "cm"}}], containers=[{"name": "c"}])
        p["metadata"]["uid"] = uid
        await vm.prepare(p, FakeClient(OBJECTS))
    assert vm.cleanup_orphans({"kept"}) == ["gone"]
    assert sorted(os.listdir(tmp_path / "pods")) == ["kept"]
    assert vm.cleanup_orphans(set()) == []  # not again within the minute
