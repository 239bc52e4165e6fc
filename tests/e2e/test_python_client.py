"""The official `kubernetes` Python client (37.x), unchanged, against the API server (dev mode, system tenant).

Every test here is something a user of the client relies on: typed models with server defaults, the
client's default patch content types, selectors, pagination, watches, errors as `ApiException` carrying a
JSON Status, subresources (scale, binding, status) and custom resources.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(apiserver) -> Iterator[client.ApiClient]:
    config = client.Configuration()
    config.host = apiserver.url
    with client.ApiClient(config) as api_client:
        yield api_client


@pytest.fixture
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def ns(core) -> str:
    name = uniq("py")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def meta(name: str, **labels: str) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, labels=labels or None)


def pod(name: str, *containers: str, **labels: str) -> client.V1Pod:
    return client.V1Pod(
        api_version="v1", kind="Pod", metadata=meta(name, **labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name=c, image="busybox:1.36", command=["sleep", "3600"])
                                          for c in (containers or ("main",))]))


def deployment(name: str, replicas: int | None = None) -> client.V1Deployment:
    return client.V1Deployment(
        api_version="apps/v1", kind="Deployment", metadata=meta(name, app=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]))))


def status_body(exc: ApiException) -> dict:
    """The error body must be a JSON metav1.Status."""
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure", body
    assert body["code"] == exc.status, body
    return body


def expect_error(status: int, reason: str, fn, *args, **kwargs) -> dict:
    with pytest.raises(ApiException) as info:
        fn(*args, **kwargs)
    body = status_body(info.value)
    assert (info.value.status, body["reason"]) == (status, reason), body
    return body


# --------------------------------------------------------------------------------------------- version


def test_version_api_get_code(api):
    info = client.VersionApi(api).get_code()
    assert info.major == "1"
    assert 27 <= int(info.minor.rstrip("+")) <= 33
    assert info.git_version.startswith(f"v1.{info.minor.rstrip('+')}.")
    # the client requires every field to be present (a string); these must also say something
    for field in ("git_commit", "git_tree_state", "build_date", "go_version", "compiler", "platform"):
        assert isinstance(getattr(info, field), str), field
    assert info.platform.count("/") == 1 and info.go_version and info.build_date


# ------------------------------------------------------------------------------------------- namespaces


def test_namespace_crud(core):
    name = uniq("nsc")
    created = core.create_namespace(client.V1Namespace(metadata=meta(name, team="a")))
    assert created.metadata.name == name and created.metadata.uid and created.metadata.resource_version
    assert isinstance(created.metadata.creation_timestamp, datetime.datetime)
    assert created.status.phase == "Active"
    assert created.spec.finalizers == ["kubernetes"]  # the server's default
    # the server labels every namespace with its own name
    assert created.metadata.labels == {"team": "a", "kubernetes.io/metadata.name": name}

    got = core.read_namespace(name)
    assert got.metadata.uid == created.metadata.uid
    listed = core.list_namespace(label_selector=f"kubernetes.io/metadata.name={name}")
    assert [n.metadata.name for n in listed.items] == [name]

    got.metadata.labels["team"] = "b"
    replaced = core.replace_namespace(name, got)
    assert replaced.metadata.labels["team"] == "b"
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespace(name, {"metadata": {"annotations": {"owner": "me"}}})
    assert patched.metadata.annotations == {"owner": "me"} and patched.metadata.labels["team"] == "b"

    core.delete_namespace(name)
    # Gone, or (with no namespace controller done yet) Terminating: never still Active.
    try:
        after = core.read_namespace(name)
    except ApiException as exc:
        assert exc.status == 404
    else:
        assert after.status.phase == "Terminating" and after.metadata.deletion_timestamp is not None


# ------------------------------------------------------------------------------------------------- pods


def test_pod_crud_defaults_patches_and_delete_preconditions(core, ns):
    created = core.create_namespaced_pod(ns, pod("p", "main", "side", app="a"))
    assert isinstance(created, client.V1Pod)
    assert created.metadata.namespace == ns and created.metadata.uid
    spec = created.spec
    # defaults a user relies on
    assert spec.restart_policy == "Always"
    assert spec.dns_policy == "ClusterFirst"
    assert spec.termination_grace_period_seconds == 30
    assert spec.scheduler_name == "default-scheduler"
    assert spec.security_context is not None
    c0 = spec.containers[0]
    assert c0.image_pull_policy == "IfNotPresent"  # a tagged, non-latest image
    assert c0.termination_message_path == "/dev/termination-log"
    assert c0.termination_message_policy == "File"
    assert created.status.phase == "Pending"

    got = core.read_namespaced_pod("p", ns)
    assert got.metadata.resource_version == created.metadata.resource_version

    # replace with the resourceVersion just read
    got.metadata.labels["stage"] = "one"
    replaced = core.replace_namespaced_pod("p", ns, got)
    assert replaced.metadata.labels == {"app": "a", "stage": "one"}
    assert replaced.metadata.resource_version != got.metadata.resource_version

    # a dict is sent as a strategic merge patch: containers merge by name
    patched = core.patch_namespaced_pod("p", ns, {"spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]}})
    assert [(c.name, c.image) for c in patched.spec.containers] == [("main", "busybox:1.36"), ("side", "busybox:1.37")]
    # a list is sent as a JSON patch
    patched = core.patch_namespaced_pod("p", ns, [
        {"op": "add", "path": "/metadata/labels/json", "value": "patch"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:1.35"},
    ])
    assert patched.metadata.labels == {"app": "a", "stage": "one", "json": "patch"}
    assert patched.spec.containers[0].image == "busybox:1.35"
    # a failing JSON patch test operation is a 422
    expect_error(422, "Invalid", core.patch_namespaced_pod, "p", ns,
                 [{"op": "test", "path": "/metadata/labels/app", "value": "nope"}])

    # delete honours preconditions
    body = expect_error(409, "Conflict", core.delete_namespaced_pod, "p", ns,
                        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=str(uuid.uuid4()))))
    assert "uid" in body["message"].lower() or "precondition" in body["message"].lower(), body
    expect_error(409, "Conflict", core.delete_namespaced_pod, "p", ns,
                 body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1")))
    assert core.read_namespaced_pod("p", ns).metadata.uid == created.metadata.uid
    core.delete_namespaced_pod("p", ns, body=client.V1DeleteOptions(
        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=created.metadata.uid,
                                                                     resource_version=patched.metadata.resource_version)))
    expect_error(404, "NotFound", core.read_namespaced_pod, "p", ns)


def test_image_pull_policy_defaults_follow_the_tag(core, ns):
    latest = pod("latest")
    latest.spec.containers[0].image = "busybox"
    assert core.create_namespaced_pod(ns, latest).spec.containers[0].image_pull_policy == "Always"
    explicit = pod("explicit")
    explicit.spec.containers[0].image = "busybox:latest"
    assert core.create_namespaced_pod(ns, explicit).spec.containers[0].image_pull_policy == "Always"


# ------------------------------------------------------------------------------------ configmaps, secrets


def test_configmap_and_secret_crud(core, ns):
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("cfg"), data={"a": "1"}))
    assert cm.data == {"a": "1"}
    cm.data["b"] = "2"
    cm = core.replace_namespaced_config_map("cfg", ns, cm)
    assert core.read_namespaced_config_map("cfg", ns).data == {"a": "1", "b": "2"}
    cm = core.patch_namespaced_config_map("cfg", ns, {"data": {"a": None, "c": "3"}})
    assert cm.data == {"b": "2", "c": "3"}
    core.delete_namespaced_config_map("cfg", ns)
    expect_error(404, "NotFound", core.read_namespaced_config_map, "cfg", ns)

    raw = base64.b64encode(b"s3cr\x00t").decode()
    secret = core.create_namespaced_secret(ns, client.V1Secret(
        metadata=meta("sec"), data={"bin": raw}, string_data={"plain": "hello"}))
    assert secret.type == "Opaque"
    # stringData is merged into data (base64) and never stored or returned
    assert secret.data == {"bin": raw, "plain": base64.b64encode(b"hello").decode()}
    assert secret.string_data is None
    got = core.read_namespaced_secret("sec", ns)
    assert base64.b64decode(got.data["bin"]) == b"s3cr\x00t"
    patched = core.patch_namespaced_secret("sec", ns, {"data": {"more": base64.b64encode(b"x").decode()}})
    assert set(patched.data) == {"bin", "plain", "more"}
    # data values must be base64
    expect_error(400, "BadRequest", core.create_namespaced_secret, ns,
                 {"metadata": {"name": "bad"}, "data": {"k": "not base64!!"}})
    core.delete_namespaced_secret("sec", ns)
    expect_error(404, "NotFound", core.read_namespaced_secret, "sec", ns)


# --------------------------------------------------------------------------------------------- services


def test_service_crud_and_defaults(core, ns):
    svc = core.create_namespaced_service(ns, client.V1Service(
        metadata=meta("web"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)])))
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.session_affinity == "None"
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == 8080
    assert svc.spec.cluster_ip and svc.spec.cluster_ip != "None"  # allocated by the server
    assert svc.spec.cluster_ips == [svc.spec.cluster_ip]
    assert svc.spec.ip_families == ["IPv4"] and svc.spec.ip_family_policy == "SingleStack"
    assert svc.spec.internal_traffic_policy == "Cluster"
    named = core.create_namespaced_service(ns, client.V1Service(
        metadata=meta("named"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=81, target_port="http")])))
    assert named.spec.ports[0].target_port == "http"
    defaulted = core.create_namespaced_service(ns, client.V1Service(
        metadata=meta("same"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=82)])))
    assert defaulted.spec.ports[0].target_port == 82  # defaults to the port

    svc.spec.selector = {"app": "web2"}
    replaced = core.replace_namespaced_service("web", ns, svc)
    assert replaced.spec.selector == {"app": "web2"} and replaced.spec.cluster_ip == svc.spec.cluster_ip
    patched = core.patch_namespaced_service("web", ns, {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels == {"x": "y"} and patched.spec.cluster_ip == svc.spec.cluster_ip
    # the cluster IP is immutable
    expect_error(422, "Invalid", core.patch_namespaced_service, "web", ns, {"spec": {"clusterIP": "10.0.0.99"}})
    core.delete_namespaced_service("web", ns)
    expect_error(404, "NotFound", core.read_namespaced_service, "web", ns)


# ------------------------------------------------------------------------------------------ deployments


def test_deployment_crud_defaults_conflict_and_propagation(apps, ns):
    created = apps.create_namespaced_deployment(ns, deployment("web"))
    spec = created.spec
    assert spec.replicas == 1
    assert spec.strategy.type == "RollingUpdate"
    assert spec.strategy.rolling_update.max_surge == "25%"
    assert spec.strategy.rolling_update.max_unavailable == "25%"
    assert spec.revision_history_limit == 10
    assert spec.progress_deadline_seconds == 600
    assert spec.template.spec.restart_policy == "Always"
    assert spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert created.metadata.generation == 1

    got = apps.read_namespaced_deployment("web", ns)
    got.spec.template.spec.containers[0].image = "nginx:1.28"
    replaced = apps.replace_namespaced_deployment("web", ns, got)
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.28"
    assert replaced.metadata.generation == 2  # spec changes bump the generation

    # replacing with the stale resourceVersion is a Conflict
    got.spec.replicas = 3
    body = expect_error(409, "Conflict", apps.replace_namespaced_deployment, "web", ns, got)
    assert "the object has been modified" in body["message"], body
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 1

    patched = apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "A", "value": "1"}]}]}}}})
    container = patched.spec.template.spec.containers[0]
    assert container.image == "nginx:1.28" and [(e.name, e.value) for e in container.env] == [("A", "1")]
    patched = apps.patch_namespaced_deployment("web", ns, [{"op": "replace", "path": "/spec/replicas", "value": 2}])
    assert patched.spec.replicas == 2

    # an invalid strategy is rejected
    expect_error(422, "Invalid", apps.patch_namespaced_deployment, "web", ns,
                 {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}})

    apps.delete_namespaced_deployment("web", ns, body=client.V1DeleteOptions(propagation_policy="Background"))
    expect_error(404, "NotFound", apps.read_namespaced_deployment, "web", ns)

    apps.create_namespaced_deployment(ns, deployment("fg"))
    apps.delete_namespaced_deployment("fg", ns, propagation_policy="Foreground")
    # Foreground: gone already, or marked for deletion and held by the foregroundDeletion finalizer
    try:
        held = apps.read_namespaced_deployment("fg", ns)
    except ApiException as exc:
        assert exc.status == 404
    else:
        assert held.metadata.deletion_timestamp is not None
        assert "foregroundDeletion" in (held.metadata.finalizers or [])
    # propagation_policy must be one of the known values
    apps.create_namespaced_deployment(ns, deployment("bad-policy"))
    expect_error(422, "Invalid", apps.delete_namespaced_deployment, "bad-policy", ns,
                 body=client.V1DeleteOptions(propagation_policy="Sideways"))


# --------------------------------------------------------------------------------------- scale subresource


def test_deployment_scale_subresource(apps, ns):
    apps.create_namespaced_deployment(ns, deployment("sc", replicas=2))
    scale = apps.read_namespaced_deployment_scale("sc", ns)
    assert isinstance(scale, client.V1Scale)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.metadata.name == "sc" and scale.metadata.namespace == ns
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=sc"

    scaled = apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 5}})
    assert scaled.spec.replicas == 5
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 5

    scaled.spec.replicas = 3
    replaced = apps.replace_namespaced_deployment_scale("sc", ns, scaled)
    assert replaced.spec.replicas == 3
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 3
    # a stale resourceVersion on the scale is a Conflict too
    body = expect_error(409, "Conflict", apps.replace_namespaced_deployment_scale, "sc", ns, scaled)
    assert body["details"]["name"] == "sc"
    expect_error(422, "Invalid", apps.patch_namespaced_deployment_scale, "sc", ns, {"spec": {"replicas": -1}})
    expect_error(404, "NotFound", apps.read_namespaced_deployment_scale, "missing", ns)


# ------------------------------------------------------------------------------------------------ leases


def test_lease_crud_keeps_microsecond_times(api, ns):
    coord = client.CoordinationV1Api(api)
    t0 = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    lease = coord.create_namespaced_lease(ns, client.V1Lease(
        metadata=meta("leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15, acquire_time=t0, renew_time=t0)))
    assert lease.spec.holder_identity == "a" and lease.spec.lease_duration_seconds == 15
    assert lease.spec.acquire_time == t0 and lease.spec.renew_time == t0  # MicroTime round-trips

    t1 = t0 + datetime.timedelta(seconds=5, microseconds=1)
    lease.spec.renew_time = t1
    renewed = coord.replace_namespaced_lease("leader", ns, lease)
    assert renewed.spec.renew_time == t1
    # a second holder that read the old version loses
    lease.spec.holder_identity = "b"
    expect_error(409, "Conflict", coord.replace_namespaced_lease, "leader", ns, lease)

    patched = coord.patch_namespaced_lease("leader", ns, {"spec": {"holderIdentity": "c", "leaseTransitions": 1}})
    assert patched.spec.holder_identity == "c" and patched.spec.lease_transitions == 1
    assert [x.metadata.name for x in coord.list_namespaced_lease(ns).items] == ["leader"]
    coord.delete_namespaced_lease("leader", ns)
    expect_error(404, "NotFound", coord.read_namespaced_lease, "leader", ns)


# -------------------------------------------------------------------------------------------------- rbac


def test_roles_and_rolebindings(api, ns):
    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.create_namespaced_role(ns, client.V1Role(
        metadata=meta("reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"])]))
    assert role.rules[0].verbs == ["get", "list", "watch"]
    role.rules.append(client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get"]))
    role = rbac.replace_namespaced_role("reader", ns, role)
    assert [r.resources for r in rbac.read_namespaced_role("reader", ns).rules] == [["pods"], ["deployments"]]
    # a rule without verbs is invalid
    expect_error(422, "Invalid", rbac.create_namespaced_role, ns, client.V1Role(
        metadata=meta("empty"), rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=[])]))

    binding = rbac.create_namespaced_role_binding(ns, client.V1RoleBinding(
        metadata=meta("read-pods"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="reader"),
        subjects=[client.RbacV1Subject(kind="User", name="jane"),
                  client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=ns)]))
    # subject apiGroup defaults by kind
    assert [(s.kind, s.api_group) for s in binding.subjects] == [
        ("User", "rbac.authorization.k8s.io"), ("ServiceAccount", "")]
    patched = rbac.patch_namespaced_role_binding("read-pods", ns, {"metadata": {"labels": {"team": "x"}}})
    assert patched.metadata.labels == {"team": "x"} and patched.role_ref.name == "reader"
    # roleRef is immutable
    patched.role_ref.name = "writer"
    body = expect_error(422, "Invalid", rbac.replace_namespaced_role_binding, "read-pods", ns, patched)
    assert "roleRef" in body["message"], body
    listed = rbac.list_namespaced_role_binding(ns, label_selector="team=x")
    assert [b.metadata.name for b in listed.items] == ["read-pods"]
    rbac.delete_namespaced_role_binding("read-pods", ns)
    rbac.delete_namespaced_role("reader", ns)
    expect_error(404, "NotFound", rbac.read_namespaced_role_binding, "read-pods", ns)
    expect_error(404, "NotFound", rbac.read_namespaced_role, "reader", ns)


# ------------------------------------------------------------------------------------- list: selectors, pages


def test_list_with_label_and_field_selectors(core, ns):
    other = uniq("py")
    core.create_namespace(client.V1Namespace(metadata=meta(other)))
    run = uniq("run")
    for name, app in (("a1", "alpha"), ("a2", "alpha"), ("b1", "beta")):
        core.create_namespaced_pod(ns, pod(name, app=app, run=run))
    core.create_namespaced_pod(other, pod("o1", app="alpha", run=run))
    core.create_namespaced_pod(other, pod("unlabelled"))

    def names(result) -> list[str]:
        return sorted(p.metadata.name for p in result.items)

    assert names(core.list_namespaced_pod(ns, label_selector="app=alpha")) == ["a1", "a2"]
    assert names(core.list_namespaced_pod(ns, label_selector="app in (beta,gamma)")) == ["b1"]
    assert names(core.list_namespaced_pod(ns, label_selector="app!=alpha")) == ["b1"]
    assert names(core.list_namespaced_pod(other, label_selector="!app")) == ["unlabelled"]
    assert names(core.list_namespaced_pod(ns, field_selector="metadata.name=a2")) == ["a2"]
    assert names(core.list_namespaced_pod(ns, field_selector="metadata.name!=a2,status.phase=Pending")) == ["a1", "b1"]
    assert names(core.list_namespaced_pod(ns, field_selector="spec.nodeName=")) == ["a1", "a2", "b1"]
    assert names(core.list_namespaced_pod(ns, label_selector="app=alpha", field_selector="metadata.name=a1")) == ["a1"]

    everywhere = core.list_pod_for_all_namespaces(label_selector=f"run={run}")
    assert sorted((p.metadata.namespace, p.metadata.name) for p in everywhere.items) == sorted(
        [(ns, "a1"), (ns, "a2"), (ns, "b1"), (other, "o1")])
    assert everywhere.metadata.resource_version
    by_ns = core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={other}")
    assert names(by_ns) == ["o1", "unlabelled"]


def test_list_with_limit_and_continue(core, ns):
    for i in range(7):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(f"cm{i}"), data={"i": str(i)}))
    first = core.list_namespaced_config_map(ns, limit=3)
    assert len(first.items) == 3 and first.metadata._continue
    pages, token, names = [first], first.metadata._continue, [c.metadata.name for c in first.items]
    # a write between pages does not show up in the same paginated list
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("cm-late")))
    while token:
        page = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        assert len(page.items) <= 3
        pages.append(page)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
    assert names == [f"cm{i}" for i in range(7)]
    assert [len(p.items) for p in pages] == [3, 3, 1]
    # every page is served from the snapshot of the first
    assert {p.metadata.resource_version for p in pages} == {first.metadata.resource_version}
    # label selectors still apply page by page
    core.patch_namespaced_config_map("cm5", ns, {"metadata": {"labels": {"pick": "yes"}}})
    core.patch_namespaced_config_map("cm1", ns, {"metadata": {"labels": {"pick": "yes"}}})
    picked, token = [], None
    while True:
        page = core.list_namespaced_config_map(ns, limit=1, label_selector="pick=yes", _continue=token)
        picked += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert picked == ["cm1", "cm5"]
    expect_error(400, "BadRequest", core.list_namespaced_config_map, ns, limit=3, _continue="garbage")


# ------------------------------------------------------------------------------------------------- watch


def collect(stream, name: str, want: int, budget: float = 15.0) -> list[tuple[str, client.V1Pod]]:
    seen, deadline = [], time.monotonic() + budget
    for event in stream:
        if event["object"].metadata.name == name:
            seen.append((event["type"], event["object"]))
        if len(seen) >= want or time.monotonic() > deadline:
            break
    return seen


def test_watch_sees_added_modified_deleted_and_resumes(core, ns):
    core.create_namespaced_pod(ns, pod("before"))
    listed = core.list_namespaced_pod(ns)
    rv = listed.metadata.resource_version
    core.create_namespaced_pod(ns, pod("w", app="v1"))
    core.patch_namespaced_pod("w", ns, {"metadata": {"labels": {"app": "v2"}}})
    core.delete_namespaced_pod("w", ns, grace_period_seconds=0)

    w = watch.Watch()
    events = []
    for event in w.stream(core.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=10,
                          _request_timeout=20):
        events.append(event)
        if len(events) == 3:
            w.stop()
    # nothing from before the list's resourceVersion, then exactly the three changes in order
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    assert all(isinstance(e["object"], client.V1Pod) for e in events)
    assert events[0]["object"].metadata.labels == {"app": "v1"}
    assert events[1]["object"].metadata.labels == {"app": "v2"}
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert events[0]["raw_object"]["kind"] == "Pod" and events[0]["raw_object"]["apiVersion"] == "v1"

    # resuming from the MODIFIED event's resourceVersion replays only what came after it
    resumed = watch.Watch()
    rest = []
    for event in resumed.stream(core.list_namespaced_pod, ns,
                                resource_version=events[1]["object"].metadata.resource_version,
                                timeout_seconds=5, _request_timeout=15):
        rest.append((event["type"], event["object"].metadata.name))
        resumed.stop()
    assert rest == [("DELETED", "w")]


def test_watch_sees_changes_made_while_streaming(core, ns):
    errors: list[BaseException] = []

    def mutate() -> None:
        try:
            time.sleep(0.5)
            core.create_namespaced_pod(ns, pod("live", app="x"))
            core.patch_namespaced_pod("live", ns, [{"op": "add", "path": "/metadata/labels/step", "value": "2"}])
            core.delete_namespaced_pod("live", ns, body=client.V1DeleteOptions(grace_period_seconds=0))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=mutate, daemon=True)
    w = watch.Watch()
    stream = w.stream(core.list_namespaced_pod, ns, label_selector="app=x", timeout_seconds=10, _request_timeout=20)
    thread.start()
    seen = collect(stream, "live", want=3)
    w.stop()
    thread.join(10)
    assert not errors, errors
    assert [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[1][1].metadata.labels == {"app": "x", "step": "2"}


def test_watch_timeout_ends_the_stream(core, ns):
    start = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_pod, ns, timeout_seconds=1, _request_timeout=10))
    assert events == []
    assert time.monotonic() - start < 5


# ------------------------------------------------------------------------------------------------ errors


def test_errors_are_api_exceptions_with_status_bodies(core, apps, ns):
    body = expect_error(404, "NotFound", core.read_namespaced_pod, "missing", ns)
    assert body["details"] == {"name": "missing", "kind": "pods"}
    assert body["message"] == 'pods "missing" not found'
    expect_error(404, "NotFound", core.create_namespaced_config_map, uniq("nowhere"),
                 client.V1ConfigMap(metadata=meta("x")))

    core.create_namespaced_pod(ns, pod("dup"))
    body = expect_error(409, "AlreadyExists", core.create_namespaced_pod, ns, pod("dup"))
    assert body["details"]["name"] == "dup" and body["details"]["kind"] == "pods"
    assert body["message"] == 'pods "dup" already exists'

    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta("c"), data={"v": "1"}))
    core.patch_namespaced_config_map("c", ns, {"data": {"v": "2"}})
    cm.data["v"] = "3"
    body = expect_error(409, "Conflict", core.replace_namespaced_config_map, "c", ns, cm)
    assert body["details"]["name"] == "c" and body["details"]["kind"] == "configmaps"
    assert core.read_namespaced_config_map("c", ns).data == {"v": "2"}

    body = expect_error(422, "Invalid", core.create_namespaced_pod, ns, pod("Bad_Name"))
    assert body["details"]["name"] == "Bad_Name" and body["details"]["kind"] == "Pod"
    assert any(c["field"] == "metadata.name" for c in body["details"]["causes"]), body
    body = expect_error(422, "Invalid", apps.create_namespaced_deployment, ns, deployment("UPPER"))
    assert any(c["field"] == "metadata.name" for c in body["details"]["causes"]), body

    body = expect_error(400, "BadRequest", core.list_namespaced_pod, ns, field_selector="spec.bogus=x")
    assert "spec.bogus" in body["message"]
    expect_error(400, "BadRequest", core.list_namespaced_pod, ns, label_selector="app in (")
    # a name in the body that differs from the URL
    cm = core.read_namespaced_config_map("c", ns)
    cm.metadata.name = "other"
    expect_error(400, "BadRequest", core.replace_namespaced_config_map, "c", ns, cm)


# ------------------------------------------------------------------------------------------ delete_collection


def test_delete_collection_with_label_selector(core, ns):
    for name, env in (("t1", "test"), ("t2", "test"), ("t3", "test"), ("p1", "prod"), ("p2", "prod"), ("n", None)):
        labels = {"env": env} if env else {}
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(name, **labels)))
    other = uniq("py")
    core.create_namespace(client.V1Namespace(metadata=meta(other)))
    core.create_namespaced_config_map(other, client.V1ConfigMap(metadata=meta("t9", env="test")))

    # Kubernetes answers with the list of what it deleted (the client's V1Status model cannot hold it)
    resp = core.delete_collection_namespaced_config_map(ns, label_selector="env=test", _preload_content=False)
    assert resp.status == 200
    deleted = json.loads(resp.data)
    assert deleted["kind"] == "ConfigMapList", deleted
    assert sorted(c["metadata"]["name"] for c in deleted["items"]) == ["t1", "t2", "t3"]
    assert sorted(c.metadata.name for c in core.list_namespaced_config_map(ns).items) == ["n", "p1", "p2"]
    # other namespaces are untouched
    assert [c.metadata.name for c in core.list_namespaced_config_map(other).items] == ["t9"]
    core.delete_collection_namespaced_config_map(ns, field_selector="metadata.name=p2")
    assert sorted(c.metadata.name for c in core.list_namespaced_config_map(ns).items) == ["n", "p1"]


# ------------------------------------------------------------------------------------- binding, pod status


def test_pod_binding_and_status_subresources(core, ns):
    core.create_namespaced_pod(ns, pod("b"))
    resp = core.create_namespaced_binding(ns, client.V1Binding(
        metadata=meta("b"), target=client.V1ObjectReference(api_version="v1", kind="Node", name="node-1")),
        _preload_content=False)
    assert resp.status == 201, resp.data
    reply = json.loads(resp.data)
    assert reply["kind"] == "Status" and reply["status"] == "Success", reply
    bound = core.read_namespaced_pod("b", ns)
    assert bound.spec.node_name == "node-1"
    scheduled = [c for c in bound.status.conditions or [] if c.type == "PodScheduled"]
    assert [c.status for c in scheduled] == ["True"]
    # a bound pod cannot be bound again
    body = expect_error(409, "Conflict", core.create_namespaced_binding, ns, client.V1Binding(
        metadata=meta("b"), target=client.V1ObjectReference(kind="Node", name="node-2")), _preload_content=False)
    assert "already assigned" in body["message"] or "already" in body["message"], body
    expect_error(404, "NotFound", core.create_namespaced_binding, ns, client.V1Binding(
        metadata=meta("nope"), target=client.V1ObjectReference(kind="Node", name="node-1")), _preload_content=False)
    # the pods/binding subresource form works too
    core.create_namespaced_pod(ns, pod("b2"))
    resp = core.create_namespaced_pod_binding("b2", ns, client.V1Binding(
        metadata=meta("b2"), target=client.V1ObjectReference(kind="Node", name="node-2")), _preload_content=False)
    assert resp.status == 201, resp.data
    assert core.read_namespaced_pod("b2", ns).spec.node_name == "node-2"

    # status is written through pods/status, which ignores spec changes
    current = core.read_namespaced_pod("b", ns)
    current.status.phase = "Running"
    current.status.pod_ip = "10.1.2.3"
    current.status.conditions = [*(current.status.conditions or []),
                                 client.V1PodCondition(type="Ready", status="True")]
    current.spec.containers[0].image = "busybox:9.9"
    updated = core.replace_namespaced_pod_status("b", ns, current)
    assert updated.status.phase == "Running" and updated.status.pod_ip == "10.1.2.3"
    assert updated.spec.containers[0].image == "busybox:1.36"
    status = core.read_namespaced_pod_status("b", ns)
    assert status.status.phase == "Running"
    assert {c.type: c.status for c in status.status.conditions}["Ready"] == "True"
    # and the main resource ignores status changes
    main = core.read_namespaced_pod("b", ns)
    main.status.phase = "Failed"
    main.metadata.labels = {"x": "y"}
    kept = core.replace_namespaced_pod("b", ns, main)
    assert kept.status.phase == "Running" and kept.metadata.labels["x"] == "y"
    patched = core.patch_namespaced_pod_status("b", ns, {"status": {"message": "hi"}})
    assert patched.status.message == "hi" and patched.status.phase == "Running"


# ------------------------------------------------------------------------------------------ custom resources


def test_crd_and_custom_objects(api, ns):
    ext = client.ApiextensionsV1Api(api)
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    crd_name = f"widgets.{group}"
    schema = client.V1JSONSchemaProps(type="object", properties={
        "spec": client.V1JSONSchemaProps(type="object", properties={
            "size": client.V1JSONSchemaProps(type="integer", minimum=0),
            "color": client.V1JSONSchemaProps(type="string"),
        }),
    })
    crd = ext.create_custom_resource_definition(client.V1CustomResourceDefinition(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition",
        metadata=client.V1ObjectMeta(name=crd_name),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group, scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural="widgets", singular="widget", kind="Widget",
                                                         short_names=["wg"]),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=schema))])))
    assert crd.metadata.name == crd_name
    try:
        deadline = time.monotonic() + 15
        served = established = False
        while time.monotonic() < deadline and not (served and established):
            groups = client.ApisApi(api).get_api_versions().groups
            served = any(g.name == group and [v.version for v in g.versions] == ["v1"] for g in groups)
            conditions = ext.read_custom_resource_definition(crd_name).status.conditions or []
            established = any(c.type == "Established" and c.status == "True" for c in conditions)
            if not (served and established):
                time.sleep(0.1)
        assert served and established, (served, established)
        resources = api.call_api("GET", f"{api.configuration.host}/apis/{group}/v1")
        resources.read()
        listing = json.loads(resources.data)
        assert [(r["name"], r["kind"], r["namespaced"]) for r in listing["resources"]
                if "/" not in r["name"]] == [("widgets", "Widget", True)]

        custom = client.CustomObjectsApi(api)
        obj = custom.create_namespaced_custom_object(group, "v1", ns, "widgets", {
            "apiVersion": f"{group}/v1", "kind": "Widget",
            "metadata": {"name": "w1", "labels": {"shape": "round"}}, "spec": {"size": 3, "color": "red"}})
        assert obj["metadata"]["uid"] and obj["metadata"]["namespace"] == ns and obj["spec"]["size"] == 3
        custom.create_namespaced_custom_object(group, "v1", ns, "widgets", {
            "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 1}})
        got = custom.get_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
        assert got["spec"] == {"size": 3, "color": "red"} and got["metadata"]["generation"] == 1
        listed = custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
        assert listed["kind"] == "WidgetList" and sorted(i["metadata"]["name"] for i in listed["items"]) == ["w1", "w2"]
        labelled = custom.list_namespaced_custom_object(group, "v1", ns, "widgets", label_selector="shape=round")
        assert [i["metadata"]["name"] for i in labelled["items"]] == ["w1"]
        everywhere = custom.list_cluster_custom_object(group, "v1", "widgets", label_selector="shape=round")
        assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [(ns, "w1")]

        # the client's default for custom objects is a JSON merge patch
        patched = custom.patch_namespaced_custom_object(group, "v1", ns, "widgets", "w1",
                                                        {"spec": {"color": None, "size": 4}})
        assert patched["spec"] == {"size": 4} and patched["metadata"]["generation"] == 2
        # fields the schema does not know are pruned
        pruned = custom.create_namespaced_custom_object(group, "v1", ns, "widgets", {
            "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w3"},
            "spec": {"size": 2, "extra": "dropped"}, "top": "dropped"})
        assert pruned["spec"] == {"size": 2} and "top" not in pruned, pruned
        custom.delete_namespaced_custom_object(group, "v1", ns, "widgets", "w3")
        # the schema is enforced
        expect_error(422, "Invalid", custom.create_namespaced_custom_object, group, "v1", ns, "widgets", {
            "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": "big"}})
        expect_error(422, "Invalid", custom.patch_namespaced_custom_object, group, "v1", ns, "widgets", "w1",
                     {"spec": {"size": -1}})
        expect_error(409, "AlreadyExists", custom.create_namespaced_custom_object, group, "v1", ns, "widgets", {
            "apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w2"}})

        custom.delete_namespaced_custom_object(group, "v1", ns, "widgets", "w1")
        expect_error(404, "NotFound", custom.get_namespaced_custom_object, group, "v1", ns, "widgets", "w1")
        remaining = custom.list_namespaced_custom_object(group, "v1", ns, "widgets")
        assert [i["metadata"]["name"] for i in remaining["items"]] == ["w2"]
    finally:
        ext.delete_custom_resource_definition(crd_name)
