"""The tenant isolation matrix: tenant A's administrator against everything tenant B owns.

Two tenants, A and B, each with a tenant-wide administrator (a ClusterRole
`*`/`*`/`*` bound to the user `admin` in its own tenant, made by the system
administrator).  B owns one object of every tenanted built-in kind, a custom
resource of a CRD defined in B (private to B) and one of a CRD defined in the
system tenant (served to every tenant).  A owns the same set under other names.

Then A's administrator, with A's client certificate, tries every verb on every
kind through every path form: tenant paths naming B (also percent-encoded,
upper-cased, with doubled slashes), `/watch/` paths, `tenants/all`, short
paths (A's own tenant) that name B's namespaces and objects, selectors that
name B (labels, `metadata.tenant`, hashKey ranges), forged continue tokens
whose start key points into B, all-namespace lists and watches (also from a
resourceVersion before B's objects existed, so the watch replays history),
Table and metadata-only output, writes whose body claims tenant B, B's Tenant
object, discovery, and impersonation (Impersonate-* headers naming B, the
system tenant or `all` as the impersonated user's tenant, in every spelling of
the extra key, or A's own superuser/node/controller names).

The rules, per answer:
- anything naming B or `all`: 403 or 404 with a Status (a 400 for `tenants/all`
  is reported by its own test: it leaks nothing but skips authorization);
- B's names through A's own short paths: what any missing name gets in A's
  tenant (404, or 405/415 for a method or patch type the kind does not take);
- A's own lists and watches: 200 with A's objects only (and A's own object
  present); a forged continue token may also get 400/410;
- writes in A's tenant whose body claims tenant B: 400/403/404/422;
- never any of B's names, uids, hashKeys, labels or data that the request did
  not itself contain; and a by-name answer must be byte-for-byte the answer
  for a name that does not exist ("twin" attempts).

Meanwhile B keeps changing a few objects, so a leaking watch would have
something to leak; afterwards every object of B must still be there with the
same resourceVersion, and nothing new may exist in B.  A separate test has
tenant C define the same CRD name as tenant D and delete it again.

`test_attempt_count` prints how many attempts were made, per verb and per
path form.
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from arktos.api.resources import BUILTIN

RBAC = "rbac.authorization.k8s.io"
THREADS = 32
TIMEOUT = 15.0  # seconds per request; a watch asks for 1 s
MIN_ATTEMPTS = 8000

# ----------------------------------------------------------------------------------------------
# HTTP


class Client:
    """HTTPS with one client certificate; one kept-alive connection per thread."""

    def __init__(self, url: str, ca: str, cert=None) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.ctx = ssl.create_default_context(cafile=ca)
        if cert is not None:
            self.ctx.load_cert_chain(str(cert.cert), str(cert.key))
        self._local = threading.local()

    def _conn(self, fresh: bool = False) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=TIMEOUT)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json",
                accept: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
        headers = {"Content-Type": ctype} if body is not None else {}
        if accept:
            headers["Accept"] = accept
        headers.update(extra)
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt == 1)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self._local.conn = None
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, ctype: str = "application/json") -> tuple[int, Any]:
        status, data = self.request(method, path, json.dumps(body).encode() if body is not None else None, ctype)
        try:
            return status, json.loads(data or b"{}")
        except ValueError:
            return status, data


def must(result: tuple[int, Any], *ok: int) -> Any:
    status, body = result
    assert status in (ok or (200, 201)), body
    return body


# ----------------------------------------------------------------------------------------------
# The kinds and their sample objects


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    private_crd: bool = False  # defined in tenant B: A must not even see the kind

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# The access and identity reviews are never stored, so there is no object of B's to reach: what they may
# tell about another tenant is tested in tests/e2e/test_auth_reviews.py.
TENANTED = [Kind(i.group, i.version, i.plural, i.kind, i.scope.namespaced, tuple(i.subresources), tuple(i.verbs))
            for i in BUILTIN if i.scope.tenanted and not i.kind.endswith("Review")]
# Filled in per run: the CRDs' groups carry the run's markers.
CUSTOM_LABELS = ("widgets(crd-in-B)", "gadgets(crd-in-system)")
MATRIX_ROWS = [k.plural for k in TENANTED] + list(CUSTOM_LABELS) + ["tenants(B-object)", "discovery",
                                                                    "impersonation"]


def sample(kind: Kind, mark: str, name: str, node: str = "node-x") -> dict:
    """One valid object of `kind` carrying `mark` in its labels and data."""
    data = f"D{mark}"
    meta = {"name": name, "labels": {"iso-mark": f"L{mark}"}, "annotations": {"iso-data": data}}
    containers = [{"name": "c", "image": "busybox", "env": [{"name": "X", "value": data}]}]
    template = {"metadata": {"labels": {"app": f"a{mark}"}}, "spec": {"containers": containers}}
    # Pods of jobs run on no node here (nodeName of a node that does not exist), so none start.
    job_template = {"metadata": {"labels": {"app": f"a{mark}"}},
                    "spec": {"containers": containers, "restartPolicy": "Never", "nodeName": node}}
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": [data]}]
    specs: dict[str, dict] = {
        "namespaces": {},
        "pods": {"spec": {"containers": containers}},
        "events": {"involvedObject": {"kind": "Pod", "name": name, "namespace": "ns"}, "reason": "R",
                   "message": data, "type": "Normal"},
        "configmaps": {"data": {"k": data}},
        "secrets": {"data": {"k": base64.b64encode(data.encode()).decode()}},
        "serviceaccounts": {},
        "services": {"spec": {"ports": [{"port": 80}], "selector": {"app": data}}},
        "endpoints": {"subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]},
        "persistentvolumes": {"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                       "hostPath": {"path": f"/tmp/{data}"}}},
        "persistentvolumeclaims": {"spec": {"accessModes": ["ReadWriteOnce"],
                                            "resources": {"requests": {"storage": "1Gi"}}}},
        "actions": {"spec": {"nodeName": node, "podName": name, "rebootAction": {"delayInSeconds": 1}}},
        "deployments": {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"a{mark}"}},
                                 "template": template}},
        "replicasets": {"spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"a{mark}"}},
                                 "template": template}},
        # The daemon set's pods would only fit nodes labelled with the marker: none are.
        "daemonsets": {"spec": {"selector": {"matchLabels": {"app": f"a{mark}"}}, "template": {
            "metadata": {"labels": {"app": f"a{mark}"}},
            "spec": {"containers": containers, "nodeSelector": {"iso-mark": data}}}}},
        "statefulsets": {"spec": {"replicas": 1, "serviceName": "svc", "selector": {"matchLabels": {
            "app": f"a{mark}"}}, "template": template}},
        "controllerrevisions": {"data": {"spec": {"template": template}}, "revision": 1},
        "jobs": {"spec": {"template": job_template}},
        "cronjobs": {"spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {
            "template": job_template}}}},
        "leases": {"spec": {"holderIdentity": data}},
        "roles": {"rules": rules},
        "clusterroles": {"rules": rules},
        "rolebindings": {"roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
                         "subjects": [{"kind": "User", "name": data, "apiGroup": RBAC}]},
        "clusterrolebindings": {"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                                "subjects": [{"kind": "User", "name": data, "apiGroup": RBAC}]},
        "customresourcedefinitions": {"spec": crd_spec(f"things{mark}", f"t{mark}.example.com", "Thing")},
        "bindings": {"target": {"kind": "Node", "name": node}},
        "resourcequotas": {"spec": {"hard": {"configmaps": "1000", "count/leases.coordination.k8s.io": "1000"}}},
        "limitranges": {"spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "100Gi"}}]}},
    }
    if kind.plural in specs:
        body = specs[kind.plural]
    elif kind.kind in ("Widget", "Gadget"):
        body = {"spec": {"secret": data}}
    else:
        raise AssertionError(f"the isolation matrix has no sample object for {kind.plural}: add one")
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, **json.loads(json.dumps(body))}


def crd_spec(plural: str, group: str, kind: str) -> dict:
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind, "listKind": f"{kind}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema},
                          "subresources": {"status": {}}}]}


def crd(plural: str, group: str, kind: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"}, "spec": crd_spec(plural, group, kind)}


# ----------------------------------------------------------------------------------------------
# The world: tenants A and B with their objects


@dataclass
class World:
    a: str
    b: str
    mark_a: str
    mark_b: str
    mark_x: str  # the attacker's marker, in bodies A sends
    admin: Client
    client_a: Client
    client_b: Client
    kinds: list[Kind]
    labels: dict[Kind, str]  # Kind -> matrix row
    b_names: dict[Kind, str]
    a_names: dict[Kind, str]
    b_objects: dict[Kind, dict] = field(default_factory=dict)
    b_namespace_obj: dict = field(default_factory=dict)
    rv_before: str = "0"
    rv_after: str = "0"  # once B's objects exist: lists continued from it page from etcd
    b_private_group: str = ""
    a_private_group: str = ""  # A's own private CRD (A's object of the CRD kind)
    system_group: str = ""
    markers: set[str] = field(default_factory=set)  # everything of B that A must never read
    churn_names: set[str] = field(default_factory=set)

    def kind_path(self, kind: Kind, tenant: str | None, namespace: str | None = "ns", *, watch: bool = False) -> str:
        """A collection path: tenant None = short path; namespace None = all namespaces."""
        parts = [kind.prefix]
        if watch:
            parts.append("watch")
        if tenant is not None:
            parts += ["tenants", tenant]
        if kind.namespaced and namespace is not None:
            parts += ["namespaces", namespace]
        parts.append(kind.plural)
        return "/".join(parts)


def make_tenant(admin: Client, name: str) -> None:
    must(admin.json("POST", "/api/v1/tenants", {"metadata": {"name": name}}))
    role = {"metadata": {"name": "everything"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    must(admin.json("POST", f"/apis/{RBAC}/v1/tenants/{name}/clusterroles", role))
    binding = {"metadata": {"name": "everything"},
               "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "everything"},
               "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "admin"}]}
    must(admin.json("POST", f"/apis/{RBAC}/v1/tenants/{name}/clusterrolebindings", binding))


def wait_established(client: Client, name: str) -> None:
    """Until the CRD is Established: the server writes that condition itself, after creation."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = client.json("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = (body.get("status") or {}).get("conditions") or [] if status == 200 else []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        time.sleep(0.05)
    raise AssertionError(f"CRD {name} was not Established in time")


def wait_served(client: Client, group: str, plural: str) -> None:
    """Until the client can list the custom resource (discovery is checked by the matrix itself)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.json("GET", f"/apis/{group}/v1/{plural}")[0] == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"{plural}.{group} was not served in time")


def populate(w: World, client: Client, mark: str, names: dict[Kind, str], tenant: str, *,
             keep: dict[Kind, dict] | None = None) -> None:
    """One object of every kind, through the short paths of the tenant's own admin."""
    must(client.json("POST", "/api/v1/namespaces", {"metadata": {"name": "ns", "labels": {"iso-mark": f"L{mark}"}}}))
    for kind in w.kinds:
        if kind.plural == "bindings" or (kind.private_crd and tenant != w.b):
            continue
        status, body = client.json("POST", w.kind_path(kind, None), sample(kind, mark, names[kind]))
        assert status == 201, (tenant, kind.plural, body)
        if keep is not None:
            keep[kind] = body


def snapshot(w: World) -> dict[tuple[str, str, str], str]:
    """(resource, namespace, name) -> resourceVersion of everything in tenant B, read as the system admin."""
    out: dict[tuple[str, str, str], str] = {}
    for kind in w.kinds:
        if kind.plural == "bindings":
            continue
        body = must(w.admin.json("GET", w.kind_path(kind, w.b, None)), 200)
        for item in body["items"]:
            meta = item["metadata"]
            if meta["name"] in w.churn_names:
                continue
            assert meta.get("tenant") == w.b, item
            out[(kind.plural, meta.get("namespace", ""), meta["name"])] = meta["resourceVersion"]
    return out


@pytest.fixture(scope="module")
def world(secure) -> World:
    run = uuid.uuid4().hex[:6]
    mark_a, mark_b, mark_x, mark_s = (f"{p}{uuid.uuid4().hex[:10]}" for p in ("ma", "mb", "mx", "ms"))
    ca = str(secure.pki.ca.cert)
    # A sorts after B in key order: a list range escaping A's prefix downwards would cross B's keys.
    a, b = f"isoz{run}", f"isob{run}"
    admin = Client(secure.url, ca, secure.pki.admin)
    make_tenant(admin, a)
    make_tenant(admin, b)
    client_a = Client(secure.url, ca, secure.pki.tenant_client(a, "admin"))
    client_b = Client(secure.url, ca, secure.pki.tenant_client(b, "admin"))

    # A CRD in the system tenant (served to all tenants) and one private to B (and one to A).
    system_group, b_group, a_group = f"s{mark_s}.example.com", f"b{mark_b}.example.com", f"t{mark_a}.example.com"
    must(admin.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    crd("gadgets", system_group, "Gadget")))
    must(client_b.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                       crd("widgets", b_group, "Widget")))
    wait_served(admin, system_group, "gadgets")
    wait_served(client_b, b_group, "widgets")
    # Watches from here replay B's creations (the custom resources' caches start with their CRDs).
    rv_before = must(admin.json("GET", "/api/v1/tenants/all/configmaps?limit=1"), 200)["metadata"]["resourceVersion"]
    widgets = Kind(b_group, "v1", "widgets", "Widget", True, ("status",), private_crd=True)
    gadgets = Kind(system_group, "v1", "gadgets", "Gadget", True, ("status",))
    kinds = [*TENANTED, widgets, gadgets]
    labels = {k: k.plural for k in TENANTED} | {widgets: CUSTOM_LABELS[0], gadgets: CUSTOM_LABELS[1]}

    def names(mark: str) -> dict[Kind, str]:
        out = {k: f"{k.plural}-{mark}" for k in kinds}
        out[next(k for k in kinds if k.plural == "namespaces")] = f"nsx-{mark}"
        return out

    w = World(a, b, mark_a, mark_b, mark_x, admin, client_a, client_b, kinds, labels, names(mark_b), names(mark_a),
              rv_before=rv_before, b_private_group=b_group, a_private_group=a_group, system_group=system_group)
    # The CRD kind's own B object is B's private CRD (its name is fixed by its group).
    crd_kind = next(k for k in kinds if k.plural == "customresourcedefinitions")
    # Objects named after the CRD kind are CRDs: give them the name their spec demands.
    w.b_names[crd_kind] = f"things{mark_b}.t{mark_b}.example.com"
    w.a_names[crd_kind] = f"things{mark_a}.t{mark_a}.example.com"
    populate(w, client_b, mark_b, w.b_names, b, keep=w.b_objects)
    populate(w, client_a, mark_a, w.a_names, a)
    w.rv_after = must(admin.json("GET", "/api/v1/tenants/all/configmaps?limit=1"), 200)["metadata"]["resourceVersion"]
    for client, name in ((client_b, f"widgets.{b_group}"), (admin, f"gadgets.{system_group}"),
                         (client_b, w.b_names[crd_kind]), (client_a, w.a_names[crd_kind])):
        wait_established(client, name)

    # Everything of B that A must never read.
    markers = {b, f"L{mark_b}", f"D{mark_b}", base64.b64encode(f"D{mark_b}".encode()).decode(), b_group,
               f"a{mark_b}", f"t{mark_b}.example.com"}
    markers |= set(w.b_names.values())
    b_all = must(admin.json("GET", w.kind_path(next(k for k in kinds if k.plural == "namespaces"), b)), 200)["items"]
    for kind in kinds:
        if kind.plural != "bindings":
            b_all += must(admin.json("GET", w.kind_path(kind, b, None)), 200)["items"]
    for item in b_all:
        meta = item["metadata"]
        markers |= {meta["uid"], str(meta["hashKey"])}
        if meta["name"] not in ("ns", "default", "everything"):
            markers.add(meta["name"])
    w.markers = {m for m in markers if len(m) >= 8}
    w.churn_names = {f"churn-{mark_b}", f"churnpod-{mark_b}", f"churnw-{mark_b}"}
    return w


# ----------------------------------------------------------------------------------------------
# Attempts


@dataclass
class Attempt:
    row: str  # matrix row: the kind (plural) or a special row
    verb: str
    form: str
    method: str
    path: str
    body: bytes | None = None
    ctype: str = "application/json"
    expect: str = "deny"  # deny | missing | own-list | own-watch | own-or-refused | refused | public
    accept: str | None = None
    own_name: str = ""  # for own-list/own-watch: an A object the answer must contain
    twin_of: Attempt | None = None  # the same request naming an object that does not exist
    secret_name: str = ""  # the B name the twin replaces
    headers: tuple[tuple[str, str], ...] = ()  # Impersonate-* headers
    status: int = 0
    response: bytes = b""
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)
    ordering: list[str] = field(default_factory=list)  # refused, but with 400 where 403 was due

    def describe(self) -> str:
        body = (self.body or b"")[:200].decode(errors="replace")
        return (f"[{self.row} {self.verb} via {self.form}] {self.method} {self.path}"
                + (f" {dict(self.headers)}" if self.headers else "")
                + (f" ({self.ctype}) {body}" if self.body else "")
                + f" -> {self.status} {self.response[:300].decode(errors='replace')}")


PATCHES = {
    "merge": ("application/merge-patch+json", {"metadata": {"labels": {"pwned": "yes"}}}),
    "json": ("application/json-patch+json", [{"op": "add", "path": "/metadata/labels/pwned", "value": "yes"}]),
    "strategic": ("application/strategic-merge-patch+json", {"metadata": {"labels": {"pwned": "yes"}}}),
}
SUB_REQUESTS: dict[str, list[tuple[str, str]]] = {
    # subresource -> (method, body kind)
    "status": [("GET", ""), ("PUT", "object"), ("PATCH", "status")],
    "scale": [("GET", ""), ("PUT", "scale"), ("PATCH", "scale-patch")],
    "binding": [("POST", "binding")],
    "action": [("POST", "action")],
    "finalize": [("PUT", "finalize")],
    "log": [("GET", "")],
    "exec": [("GET", ""), ("POST", "")],
}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
WATCH_Q = "watch=1&timeoutSeconds=1"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def kind_attempts(w: World, kind: Kind, add: Callable[..., Attempt]) -> None:
    """Everything A tries against B's object of one kind."""
    b, a = w.b, w.a
    encoded_b = "%" + format(ord(b[0]), "02X") + b[1:]
    row = w.labels[kind]
    bname = w.b_names[kind]
    attack = sample(kind, w.mark_x, bname)
    attack["metadata"]["namespace"] = "ns"
    new_obj = sample(kind, w.mark_x, f"new{kind.plural[:4]}-{w.mark_x}")
    if kind.plural == "customresourcedefinitions":
        attack["spec"]["group"] = bname.split(".", 1)[1]
        new_obj = crd("evils", f"e{w.mark_x}.example.com", "Evil")
    apply_body = {"apiVersion": kind.api_version, "kind": kind.kind,
                  "metadata": {"name": bname, "labels": {"pwned": "yes"}}}
    if kind.namespaced:
        apply_body["metadata"]["namespace"] = "ns"

    # Path forms that name B: tenant paths, their /watch/ variants, tenants/all, encoded
    # and doubled-slash spellings.  Everything must be refused.
    collections_b = {
        "tenant-B": w.kind_path(kind, b),
        "tenant-B-encoded": w.kind_path(kind, encoded_b),
        "tenant-B-double-slash": w.kind_path(kind, b).replace("/tenants/", "//tenants//"),
        "tenant-B-uppercase": w.kind_path(kind, b.upper()),
        "tenants-all": w.kind_path(kind, "all"),
    }
    if kind.namespaced:
        collections_b["tenant-B-all-namespaces"] = w.kind_path(kind, b, None)
        collections_b["tenants-all-all-namespaces"] = w.kind_path(kind, "all", None)
        collections_b["tenant-B-other-namespace"] = w.kind_path(kind, b, f"nsx-{w.mark_b}")
    watch_paths_b = {
        "watch-tenant-B": w.kind_path(kind, b, watch=True),
        "watch-tenants-all": w.kind_path(kind, "all", watch=True),
    }
    if kind.namespaced:
        watch_paths_b["watch-tenant-B-all-namespaces"] = w.kind_path(kind, b, None, watch=True)
        watch_paths_b["watch-tenants-all-all-namespaces"] = w.kind_path(kind, "all", None, watch=True)

    def by_name(form: str, coll: str, expect: str, name: str = bname) -> None:
        """Every by-name verb on `coll/name`, each with its twin for a name that does not exist."""
        obj = json.loads(json.dumps(attack).replace(bname, name))
        ap = json.loads(json.dumps(apply_body).replace(bname, name))
        reqs: list[tuple[str, str, Any, str, str]] = [
            ("get", "GET", None, "application/json", ""),
            ("get-table", "GET", None, "application/json", TABLE),
            ("update", "PUT", obj, "application/json", ""),
            ("delete", "DELETE", None, "application/json", ""),
            ("delete-with-options", "DELETE", {"kind": "DeleteOptions", "apiVersion": "v1",
                                               "propagationPolicy": "Background",
                                               "gracePeriodSeconds": 0}, "application/json", ""),
        ]
        reqs += [(f"patch-{p}", "PATCH", body, ctype, "") for p, (ctype, body) in PATCHES.items()]
        if expect != "missing":
            # In A's own tenant, apply to a missing name rightly creates A's object; the short-path
            # apply attempts carry `metadata.tenant: B` instead (below).
            reqs.append(("patch-apply", "PATCH", ap, "application/apply-patch+yaml", "?fieldManager=evil&force=true"))
        reqs.append(("watch-by-name", "GET", None, "application/json", f"?{WATCH_Q}"))
        for sub in kind.subresources:
            for method, shape in SUB_REQUESTS.get(sub, [("GET", ""), ("PUT", "object"), ("PATCH", "status")]):
                body = {
                    "": None, "object": obj, "status": {"status": {"phase": "Pwned"}},
                    "scale": {"kind": "Scale", "apiVersion": "autoscaling/v1",
                              "metadata": {"name": name, "namespace": "ns"}, "spec": {"replicas": 7}},
                    "scale-patch": {"spec": {"replicas": 7}},
                    "binding": {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                "target": {"kind": "Node", "name": "evil-node"}},
                    "action": {"kind": "CustomAction", "operation": "reboot", "rebootParams": {"delayInSeconds": 1}},
                    "finalize": {"metadata": {"name": name}, "spec": {"finalizers": []}},
                }[shape]
                ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
                reqs.append((f"{sub}:{method.lower()}", method, body, ctype, ""))
        for verb, method, body, ctype, extra in reqs:
            accept = TABLE if verb == "get-table" else None
            sub = verb.split(":")[0] if ":" in verb else ""
            path = f"{coll}/{name}" + (f"/{sub}" if sub else "") + extra
            counted = "subresource:" + verb if sub else verb
            # Watching one name in A's own tenant is a watch of A's objects: 200 and no events.
            want = "own-watch" if verb == "watch-by-name" and expect == "missing" else expect
            att = add(row, counted, form, method, path, body, ctype=ctype, expect=want, accept=accept)
            if name == bname:
                ghost = f"nx{w.mark_x[:8]}{kind.plural[:3]}"
                twin_path = path.replace(bname, ghost)
                twin_body = None if att.body is None else att.body.replace(bname.encode(), ghost.encode())
                add(row, counted, form + "(twin)", method, twin_path, twin_body, ctype=ctype, expect=want,
                    accept=accept, twin_of=att, secret_name=ghost)
                att.secret_name = bname

    def collection(form: str, coll: str, expect: str, own_name: str = "") -> None:
        """Collection verbs: list (plain, Table, selectors), watch, create, deletecollection."""
        hk = str(w.b_objects[kind]["metadata"]["hashKey"]) if kind in w.b_objects else "1"
        selectors = {
            "list": "",
            "list-label-selector": f"?labelSelector=iso-mark%3DL{w.mark_b}",
            "list-label-exists": "?labelSelector=iso-mark",
            "list-field-tenant": f"?fieldSelector=metadata.tenant%3D{b}",
            "list-field-name": f"?fieldSelector=metadata.name%3D{bname}",
            "list-hashkey-all": "?fieldSelector=metadata.hashkey%3Dgte%3A0",
            "list-hashkey-exact": f"?fieldSelector=metadata.hashkey%3Dgt%3A{int(hk) - 1},metadata.hashkey%3Dlte%3A{hk}",
            "list-limit-1": "?limit=1",
            "list-rv-0": "?resourceVersion=0",
        }
        if expect == "own-list":
            # Forged continue tokens: the start key is the client's to send back, and must not
            # move A's list into B's keys.  An older revision makes the server page from etcd.
            res = kind.plural if kind.group in ("", "apps", RBAC, "coordination.k8s.io") else \
                f"{kind.group}/{kind.plural}"
            for label, start in (("root", f"/registry/{res}/"), ("B", f"/registry/{res}/{b}/"),
                                 ("B-ns", f"/registry/{res}/{b}/ns/"), ("registry", "/registry/"),
                                 ("NUL", "\u0000"), ("B-object", f"/registry/{res}/{b}/ns/{bname}")):
                token = base64.urlsafe_b64encode(json.dumps({"rv": int(w.rv_after), "start": start}).encode())
                add(row, f"list-forged-continue-{label}", form, "GET",
                    f"{coll}?limit=500&continue={token.decode()}", expect="own-or-refused")
        for verb, query in selectors.items():
            add(row, verb, form, "GET", coll + query, expect=expect, own_name=own_name
                if verb in ("list", "list-hashkey-all", "list-rv-0", "list-label-exists") else "")
        add(row, "list-table", form, "GET", coll, expect=expect, accept=TABLE, own_name=own_name)
        add(row, "list-metadata", form, "GET", coll,
            accept="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", expect=expect)
        watch_expect = "own-watch" if expect == "own-list" else expect
        add(row, "watch", form, "GET", f"{coll}?{WATCH_Q}", expect=watch_expect, own_name=own_name)
        add(row, "watch-from-before-B", form, "GET", f"{coll}?{WATCH_Q}&resourceVersion={w.rv_before}",
            expect=watch_expect, own_name=own_name)
        add(row, "watch-label-selector", form, "GET", f"{coll}?{WATCH_Q}&labelSelector=iso-mark%3DL{w.mark_b}",
            expect=watch_expect)
        add(row, "watch-field-tenant", form, "GET", f"{coll}?{WATCH_Q}&fieldSelector=metadata.tenant%3D{b}",
            expect=watch_expect)
        if expect != "own-list":
            add(row, "create", form, "POST", coll, new_obj, expect=expect)
            add(row, "deletecollection", form, "DELETE", coll, expect=expect)
        else:
            # A's own tenant: deleting only what carries B's label must delete nothing at all.
            add(row, "deletecollection", form, "DELETE", f"{coll}?labelSelector=iso-mark%3DL{w.mark_b}",
                expect="own-list")
            add(row, "deletecollection", form, "DELETE", f"{coll}?fieldSelector=metadata.tenant%3D{b}",
                expect="own-list")

    if kind.plural == "bindings":
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": w.b_names[pods_kind(w)]},
                "target": {"kind": "Node", "name": "evil-node"}}
        for form, coll in collections_b.items():
            add(row, "create", form, "POST", coll, body)
        add(row, "create", "short-path", "POST", w.kind_path(kind, None), body, expect="missing")
        body_b = json.loads(json.dumps(body))
        body_b["metadata"]["tenant"] = b
        add(row, "create", "tenant-A-path,body-tenant-B", "POST", w.kind_path(kind, a), body_b, expect="refused")
        return

    private = kind.private_crd
    for form, coll in collections_b.items():
        collection(form, coll, "deny")
        by_name(form, coll, "deny")
    for form, coll in watch_paths_b.items():
        add(row, "watch", form, "GET", f"{coll}?timeoutSeconds=1", expect="deny")
        add(row, "watch-by-name", form, "GET", f"{coll}/{bname}?timeoutSeconds=1", expect="deny")

    # Short paths: A's own tenant.  B's names do not exist there; lists are A's.
    own = "deny" if private else "own-list"
    own_name = "" if private else w.a_names[kind]
    short = w.kind_path(kind, None)
    collection("short-path", short, own, own_name)
    by_name("short-path", short, "deny" if private else "missing")
    add(row, "watch", "short-watch-path", "GET", w.kind_path(kind, None, watch=True) + "?timeoutSeconds=1",
        expect="deny" if private else "own-watch", own_name=own_name)
    if kind.namespaced:
        collection("short-path-all-namespaces", w.kind_path(kind, None, None), own, own_name)
        collection("short-path-B-only-namespace", w.kind_path(kind, None, f"nsx-{w.mark_b}"), own)
        add(row, "watch", "short-watch-path-all-namespaces", "GET",
            w.kind_path(kind, None, None, watch=True) + "?timeoutSeconds=1",
            expect="deny" if private else "own-watch", own_name=own_name)
    # Tenant path naming A itself: the same as the short path.
    collection("tenant-A-path", w.kind_path(kind, a), own, own_name)
    # Writes in A's own tenant whose body claims tenant B.
    claim = json.loads(json.dumps(attack))
    claim["metadata"]["tenant"] = b
    claim_new = json.loads(json.dumps(new_obj))
    claim_new["metadata"]["tenant"] = b
    for form, coll in (("short-path,body-tenant-B", short), ("tenant-A-path,body-tenant-B", w.kind_path(kind, a))):
        add(row, "create", form, "POST", coll, claim_new, expect="refused")
        add(row, "create-with-B-name", form, "POST", coll, claim, expect="refused")
        add(row, "update", form, "PUT", f"{coll}/{bname}", claim, expect="refused")
        ap = json.loads(json.dumps(apply_body))
        ap["metadata"]["tenant"] = b
        add(row, "patch-apply", form, "PATCH", f"{coll}/{bname}?fieldManager=evil&force=true", ap,
            ctype="application/apply-patch+yaml", expect="refused")
        a_name = w.a_names[kind]
        if not private:
            # Move one of A's own objects into B by rewriting its tenant (or namespace to B's).
            move = {"metadata": {"tenant": b}}
            add(row, "patch-merge-move-to-B", form, "PATCH", f"{coll}/{a_name}", move,
                ctype="application/merge-patch+json", expect="refused")
            add(row, "patch-json-move-to-B", form, "PATCH", f"{coll}/{a_name}",
                [{"op": "replace", "path": "/metadata/tenant", "value": b}],
                ctype="application/json-patch+json", expect="refused")


def build_attempts(w: World) -> list[Attempt]:
    out: list[Attempt] = []
    b = w.b
    encoded_b = "%" + format(ord(b[0]), "02X") + b[1:]

    def add(row: str, verb: str, form: str, method: str, path: str, body: Any = None, **kw: Any) -> Attempt:
        data = body if body is None or isinstance(body, bytes) else dumps(body)
        att = Attempt(row, verb, form, method, path, data, **kw)
        out.append(att)
        return att

    for kind in w.kinds:
        kind_attempts(w, kind, add)

    # B's Tenant object itself (cluster-scoped): A may not touch it.
    row = "tenants(B-object)"
    for method, path, body in [
        ("GET", f"/api/v1/tenants/{b}", None), ("GET", "/api/v1/tenants", None),
        ("GET", f"/api/v1/tenants?fieldSelector=metadata.name%3D{b}", None),
        ("GET", f"/api/v1/tenants?{WATCH_Q}", None), ("GET", f"/api/v1/watch/tenants/{b}?timeoutSeconds=1", None),
        ("PUT", f"/api/v1/tenants/{b}", {"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": b}}),
        ("PATCH", f"/api/v1/tenants/{b}", {"metadata": {"labels": {"pwned": "yes"}}}),
        ("DELETE", f"/api/v1/tenants/{b}", None), ("DELETE", "/api/v1/tenants", None),
        ("GET", f"/api/v1/tenants/{b}/status", None),
        ("PUT", f"/api/v1/tenants/{b}/status", {"metadata": {"name": b}, "status": {"phase": "Terminating"}}),
        ("PATCH", f"/api/v1/tenants/{b}/status", {"status": {"phase": "Terminating"}}),
        ("PUT", f"/api/v1/tenants/{b}/finalize", {"metadata": {"name": b}, "spec": {"finalizers": []}}),
        ("POST", "/api/v1/tenants", {"metadata": {"name": f"evil{w.mark_x}"}}),
        ("GET", f"/api/v1/tenants/{encoded_b}", None),
    ]:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch-merge", "DELETE": "delete", "POST": "create"}[method]
        if "/status" in path or "/finalize" in path:
            verb = "subresource:" + path.rsplit("/", 1)[1] + ":" + method.lower()
        elif method == "GET" and ("watch" in path):
            verb = "watch"
        elif method == "GET" and path.startswith("/api/v1/tenants?"):
            verb = "list"
        elif method == "DELETE" and path == "/api/v1/tenants":
            verb = "deletecollection"
        add(row, verb, "tenant-object", method, path, body,
            ctype="application/merge-patch+json" if method == "PATCH" else "application/json")

    # Discovery: public documents must not mention B's private CRD; its own documents must not exist for A.
    row = "discovery"
    groups = must(w.admin.json("GET", "/apis"), 200)["groups"]
    public = ["/api", "/apis", "/api/v1", "/openapi/v2", "/openapi/v3", "/version", "/apis/"]
    for g in groups:
        if w.mark_b in g["name"] or w.mark_a in g["name"]:
            continue  # the system admin should not see them either; B's are checked below
        public.append(f"/apis/{g['name']}")
        for v in g["versions"]:
            public.append(f"/apis/{v['groupVersion']}")
            public.append(f"/openapi/v3/apis/{v['groupVersion']}")
    public.append("/openapi/v3/api/v1")
    for path in public:
        add(row, "discovery", "discovery", "GET", path, expect="public")
    add(row, "discovery", "discovery", "GET", "/openapi/v2", expect="public", accept="application/json")
    for group in (w.b_private_group, f"t{w.mark_b}.example.com"):
        for path in (f"/apis/{group}", f"/apis/{group}/v1", f"/openapi/v3/apis/{group}/v1"):
            add(row, "discovery", "discovery-private-crd-of-B", "GET", path, expect="deny")
    # A's own private CRD is A's to see.
    add(row, "discovery", "discovery-private-crd-of-A", "GET", f"/apis/{w.a_private_group}/v1", expect="public")
    impersonation_attempts(w, add)
    return out


def impersonation_attempts(w: World, add: Callable[..., Attempt]) -> None:
    """A's administrator (a `*` in A, so it may impersonate anyone *of A*) acting as someone else: naming B,
    the system tenant or `all` as the impersonated user's tenant (every spelling of the extra key) is refused
    before anything else; the superuser, node and controller names it may take are A's own identities, so
    they reach nothing of B, `all` or the kinds outside tenants.  By-name answers must match the twin's."""
    b, row = w.b, "impersonation"
    kind_of = {k.plural: k for k in w.kinds}
    cms, pods, secrets = kind_of["configmaps"], kind_of["pods"], kind_of["secrets"]
    spellings = ("Arktos.io%2Ftenant", "arktos.io%2ftenant", "ARKTOS%2EIO%2FTENANT", "arktos%2eio%2ftenant")
    elsewhere = [(f"tenant-extra-{t}-{i}", (("Impersonate-User", user), (f"Impersonate-Extra-{sp}", tenant)))
                 for i, sp in enumerate(spellings) for t, tenant, user in (
                     ("B", b, "admin"), ("B-upper", b.upper(), "admin"), ("system", "system", "system:admin"),
                     ("all", "all", "admin"))]
    elsewhere.append(("tenant-extra-B-sa", (("Impersonate-User", "system:serviceaccount:ns:default"),
                                            ("Impersonate-Extra-arktos.io%2Ftenant", b))))
    in_a = [
        ("masters-in-A", (("Impersonate-User", "system:admin"), ("Impersonate-Group", "system:masters"))),
        ("node-in-A", (("Impersonate-User", "system:node:node-x"), ("Impersonate-Group", "system:nodes"))),
        ("controller-manager-in-A", (("Impersonate-User", "system:kube-controller-manager"),)),
        ("B-prefixed-name", (("Impersonate-User", f"{b}:admin"), ("Impersonate-Group", "system:masters"))),
        ("admin-of-A", (("Impersonate-User", "admin"), ("Impersonate-Extra-arktos.io%2Ftenant", w.a))),
    ]
    for form, headers in elsewhere + in_a:
        refused_anyway = form.startswith("tenant-extra")
        for coll in (w.kind_path(cms, b), w.kind_path(secrets, "all", None), w.kind_path(pods, b, None),
                     w.kind_path(pods, b, watch=True)):
            verb = "watch" if "/watch/" in coll else "list"
            add(row, verb, f"as-{form}", "GET", coll + (f"?{WATCH_Q}" if verb == "watch" else ""), headers=headers)
        for method, body in (("GET", None), ("DELETE", None), ("PATCH", {"metadata": {"labels": {"pwned": "yes"}}})):
            name = w.b_names[cms]
            ghost = f"nx{w.mark_x[:8]}imp"
            verb = {"GET": "get", "DELETE": "delete", "PATCH": "patch-merge"}[method]
            ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
            for form_b, path in ((f"as-{form}", f"{w.kind_path(cms, b)}/{name}"),
                                 (f"as-{form}-short-path", f"{w.kind_path(cms, None)}/{name}")):
                att = add(row, verb, form_b, method, path, body, ctype=ctype, headers=headers,
                          expect="deny" if refused_anyway or "short" not in form_b else "refused")
                add(row, verb, form_b + "(twin)", method, path.replace(name, ghost), body, ctype=ctype,
                    headers=headers, expect=att.expect, twin_of=att, secret_name=ghost)
                att.secret_name = name
        for verb, path in (("list", "/api/v1/nodes"), ("get", f"/api/v1/tenants/{b}"), ("list", "/api/v1/tenants"),
                           ("list", "/api/v1/tenants/all/namespaces")):
            add(row, verb, f"as-{form}", "GET", path, headers=headers)
        # A's own short paths: refused when naming another tenant; otherwise A's objects at most.
        own = w.kind_path(cms, None, None)
        add(row, "list", f"as-{form}-short-path", "GET", own, headers=headers,
            expect="deny" if refused_anyway else "own-or-denied")


def pods_kind(w: World) -> Kind:
    return next(k for k in w.kinds if k.plural == "pods")


# ----------------------------------------------------------------------------------------------
# Judging one answer


def judge(w: World, att: Attempt) -> None:
    p = att.problems
    request_text = urllib.parse.unquote(att.path) + (att.body or b"").decode(errors="replace") + "".join(
        v for _, v in att.headers)  # what the request itself said (e.g. an impersonated name) is no leak
    text = att.response.decode(errors="replace")
    leaked = sorted(m for m in w.markers if m in text and m not in request_text)
    if leaked:
        p.append(f"the answer carries B's data: {leaked[:5]}")
    if att.status == 0:
        return
    if att.status >= 500:
        p.append(f"server error {att.status}")
        return
    parsed: Any = None
    if att.expect != "own-watch":
        try:
            parsed = json.loads(att.response) if att.response else None
        except ValueError:
            p.append("the answer is not JSON")
    if att.expect in ("deny", "missing", "refused"):
        allowed = {"deny": (403, 404), "missing": (404, 405, 415), "refused": (400, 403, 404, 422)}[att.expect]
        if att.status == 400 and att.expect == "deny" and att.form.startswith("tenants-all"):
            # A refusal all the same, but by request validation before authorization (kube-apiserver
            # authorizes first): reported by its own test so it does not hide real breaches.
            att.ordering.append(f"expected 403/404, got 400: {text[:200]}")
        elif att.status not in allowed:
            p.append(f"expected {'/'.join(map(str, allowed))}, got {att.status}")
        if not (isinstance(parsed, dict) and parsed.get("kind") == "Status" and parsed.get("code") == att.status):
            p.append("the refusal is not a Status with the response code")
    elif (att.expect == "own-or-refused" and att.status in (400, 410)) or (
            att.expect == "own-or-denied" and att.status == 403):
        if not (isinstance(parsed, dict) and parsed.get("kind") == "Status" and parsed.get("code") == att.status):
            p.append("the refusal is not a Status with the response code")
    elif att.expect in ("own-list", "own-or-refused", "own-or-denied"):
        if att.status != 200:
            p.append(f"expected 200 (A's own list), got {att.status}")
            return
        items = parsed.get("items") if isinstance(parsed, dict) else None
        rows = parsed.get("rows") if isinstance(parsed, dict) else None
        if items is None and rows is None:
            p.append("not a list")
            return
        objs = items if items is not None else [r.get("object") or {} for r in rows]
        for obj in objs:
            tenant = (obj.get("metadata") or {}).get("tenant")
            if tenant != w.a:
                p.append(f"A's list holds an object of tenant {tenant!r}: {(obj.get('metadata') or {}).get('name')}")
        if att.own_name and att.own_name not in text:
            p.append(f"A's own object {att.own_name} is missing from A's list")
    elif att.expect == "own-watch":
        if att.status != 200:
            p.append(f"expected 200 (A's own watch), got {att.status}")
            return
        if att.elapsed > 10:
            p.append(f"a 1 s watch took {att.elapsed:.1f} s")
        seen = ""
        for line in att.response.splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                p.append(f"unexpected watch event {event.get('type')}: {line[:200]!r}")
                continue
            if event["type"] != "BOOKMARK" and (obj.get("metadata") or {}).get("tenant") != w.a:
                p.append(f"A's watch carried an event of tenant {(obj.get('metadata') or {}).get('tenant')!r}")
            seen += line.decode(errors="replace")
        if att.own_name and att.own_name not in seen:
            p.append(f"A's own object {att.own_name} is missing from A's watch")
    elif att.expect == "public":
        if att.status != 200:
            p.append(f"expected 200 for a public discovery document, got {att.status}")
        for m in (w.b_private_group, f"t{w.mark_b}.example.com"):
            if m in text:
                p.append(f"discovery shows B's private custom resource ({m})")


def compare_twins(att: Attempt) -> None:
    twin = att.twin_of
    if twin is None:
        return
    mine = att.response.replace(att.secret_name.encode(), b"<NAME>")
    theirs = twin.response.replace(twin.secret_name.encode(), b"<NAME>")
    if (att.status, mine) != (twin.status, theirs):
        twin.problems.append(
            f"the answer for B's existing object differs from the answer for a missing one: "
            f"{twin.status} {theirs[:200]!r} vs {att.status} {mine[:200]!r}")


# ----------------------------------------------------------------------------------------------
# Running it


COUNTS: collections.Counter = collections.Counter()
FORMS: collections.Counter = collections.Counter()


def churn(w: World, stop: threading.Event) -> int:
    """B keeps changing: a config map, a pod's labels, a custom resource.  Returns the number of writes."""
    c = w.client_b
    cm, pod, widget = (f"churn-{w.mark_b}", f"churnpod-{w.mark_b}", f"churnw-{w.mark_b}")
    widgets = next(k for k in w.kinds if k.private_crd)
    pods = pods_kind(w)
    must(c.json("POST", "/api/v1/namespaces/ns/configmaps",
                {"metadata": {"name": cm, "labels": {"iso-mark": f"L{w.mark_b}"}}, "data": {"k": f"D{w.mark_b}"}}))
    must(c.json("POST", "/api/v1/namespaces/ns/pods", sample(pods, w.mark_b, pod)))
    must(c.json("POST", w.kind_path(widgets, None), sample(widgets, w.mark_b, widget)))
    writes, i = 0, 0
    while not stop.is_set():
        i += 1
        for path in (f"/api/v1/namespaces/ns/configmaps/{cm}", f"/api/v1/namespaces/ns/pods/{pod}",
                     f"{w.kind_path(widgets, None)}/{widget}"):
            must(c.json("PATCH", path, {"metadata": {"labels": {"iso-mark": f"L{w.mark_b}", "round": str(i)}}},
                        "application/merge-patch+json"), 200)
            writes += 1
        stop.wait(0.05)
    return writes


@pytest.fixture(scope="module")
def matrix(world: World) -> list[Attempt]:
    w = world
    before = snapshot(w)
    attempts = build_attempts(w)
    stop = threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS + 1) as pool:
        churner = pool.submit(churn, w, stop)
        time.sleep(0.2)

        def run(att: Attempt) -> None:
            t0 = time.monotonic()
            try:
                att.status, att.response = w.client_a.request(att.method, att.path, att.body, att.ctype, att.accept,
                                                              att.headers)
            except TimeoutError as exc:
                att.problems.append(f"no answer within {TIMEOUT} s (hang): {exc}")
            except (OSError, http.client.HTTPException) as exc:
                att.problems.append(f"connection failed: {exc!r}")
            att.elapsed = time.monotonic() - t0

        # Watches first (they take a second each), then the rest.
        ordered = sorted(attempts, key=lambda x: 0 if "watch" in x.verb or "watch" in x.path else 1)
        list(pool.map(run, ordered))
        stop.set()
        writes = churner.result()
    elapsed = time.monotonic() - started
    for att in attempts:
        judge(w, att)
    for att in attempts:
        compare_twins(att)
    for att in attempts:
        COUNTS[att.verb.replace("subresource:", "").replace(":", "/")] += 1
        FORMS[att.form.replace("(twin)", "")] += 1
    after = snapshot(w)
    MATRIX_INFO.update(elapsed=elapsed, churn_writes=writes, before=before, after=after)
    return attempts


MATRIX_INFO: dict[str, Any] = {}


def failures(attempts: list[Attempt], row: str) -> list[str]:
    return [f"{att.describe()}\n    => " + "; ".join(att.problems)
            for att in attempts if att.row == row and att.problems]


@pytest.mark.parametrize("row", MATRIX_ROWS)
def test_tenant_a_cannot_reach_tenant_b(matrix: list[Attempt], row: str) -> None:
    tried = [a for a in matrix if a.row == row]
    assert tried, f"no attempts for {row}"
    bad = failures(matrix, row)
    assert not bad, f"{len(bad)} of {len(tried)} attempts on {row} broke isolation:\n" + "\n".join(bad[:40])


def test_tenants_all_is_forbidden_before_it_is_validated(matrix: list[Attempt]) -> None:
    """`tenants/all` with a verb other than list/watch: a tenant user gets 403 like for any other tenant.

    The server checks "all is only for list and watch" (400) before authorization; no data leaks, but
    the answer differs from every other tenant path and from kube-apiserver's authorize-first order.
    """
    bad = [f"{att.describe()}\n    => " + "; ".join(att.ordering) for att in matrix if att.ordering]
    assert not bad, f"{len(bad)} tenants/all requests by tenant A got 400 instead of 403:\n" + "\n".join(bad[:20])


def test_b_is_unchanged_and_nothing_was_added(matrix: list[Attempt]) -> None:
    before, after = MATRIX_INFO["before"], MATRIX_INFO["after"]
    assert MATRIX_INFO["churn_writes"] > 0
    changed = {k: (before[k], after.get(k)) for k in before if after.get(k) != before[k]}
    added = sorted(set(after) - set(before))
    assert not changed and not added, f"B was changed by A: changed {changed}, added {added}"
    assert len(before) >= len(TENANTED) - 1


def test_b_still_reads_its_own_objects(world: World, matrix: list[Attempt]) -> None:
    """B's own view is intact after the attack: its private CRD is still served with its status subresource."""
    w = world
    widgets = next(k for k in w.kinds if k.private_crd)
    body = must(w.client_b.json("GET", w.kind_path(widgets, None)), 200)
    assert {i["metadata"]["name"] for i in body["items"]} >= {w.b_names[widgets]}
    status, _ = w.client_b.json("GET", f"{w.kind_path(widgets, None)}/{w.b_names[widgets]}/status")
    assert status == 200


def test_a_crd_of_the_same_name_in_another_tenant_leaves_b_alone(secure) -> None:
    """Tenant C defines the same CRD name as D (other schema, no status subresource), then deletes it.

    D's definition must stay what D made it and D's objects must stay served.
    """
    ca = str(secure.pki.ca.cert)
    admin = Client(secure.url, ca, secure.pki.admin)
    run = uuid.uuid4().hex[:8]
    c, d = f"crdc{run}", f"crdd{run}"
    make_tenant(admin, c)
    make_tenant(admin, d)
    client_c = Client(secure.url, ca, secure.pki.tenant_client(c, "admin"))
    client_d = Client(secure.url, ca, secure.pki.tenant_client(d, "admin"))
    group = f"shared{run}.example.com"
    for client in (client_c, client_d):
        must(client.json("POST", "/api/v1/namespaces", {"metadata": {"name": "ns"}}))
    must(client_d.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                       crd("widgets", group, "Widget")))
    wait_served(client_d, group, "widgets")
    path = f"/apis/{group}/v1/namespaces/ns/widgets"
    must(client_d.json("POST", path, {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"},
                                      "spec": {"secret": "kept"}}))
    theirs = crd("widgets", group, "Widget")
    theirs["spec"]["versions"][0]["subresources"] = {}
    theirs["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"other": {"type": "string"}}}}}
    must(client_c.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", theirs))
    wait_served(client_c, group, "widgets")
    problems = []

    def check(when: str) -> None:
        status, body = client_d.json("GET", f"{path}/w")
        if status != 200 or (body.get("spec") or {}).get("secret") != "kept":
            problems.append(f"{when}: GET {path}/w as D -> {status} {str(body)[:300]}")
        status, body = client_d.json("GET", f"{path}/w/status")
        if status != 200:
            problems.append(f"{when}: GET {path}/w/status as D -> {status} {str(body)[:300]}")
        status, body = client_d.json("GET", f"/apis/{group}/v1")
        names = [r.get("name") for r in body.get("resources", [])] if isinstance(body, dict) else []
        if status != 200 or "widgets/status" not in names:
            problems.append(f"{when}: GET /apis/{group}/v1 as D -> {status} {names}")
        status, body = client_d.json("PUT", f"{path}/w", {"apiVersion": f"{group}/v1", "kind": "Widget",
                                                          "metadata": {"name": "w"}, "spec": {"secret": "kept"}})
        if status != 200 or (body.get("spec") or {}).get("secret") != "kept":
            problems.append(f"{when}: PUT {path}/w as D -> {status} {str(body)[:300]}")

    time.sleep(0.3)
    check("after C defined the same CRD")
    must(client_c.json("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}"), 200, 202)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and client_c.json("GET", f"/apis/{group}/v1/widgets")[0] == 200:
        time.sleep(0.05)
    check("after C deleted its CRD")
    COUNTS["crd-collision-checks"] += 8
    assert not problems, "tenant C's CRD interfered with tenant D's:\n" + "\n".join(problems)


def test_attempt_count(matrix: list[Attempt], capsys: pytest.CaptureFixture) -> None:
    """Runs last in this module: the number the issue note quotes."""
    total = sum(COUNTS.values())
    lines = [f"tenant isolation matrix: {len(matrix)} attempts by tenant A against tenant B "
             f"in {MATRIX_INFO['elapsed']:.1f} s ({MATRIX_INFO['churn_writes']} writes by B meanwhile); "
             f"{total} counted including extra checks",
             "per verb: " + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items(), key=lambda kv: -kv[1])),
             "per path form: " + ", ".join(f"{k}={v}" for k, v in sorted(FORMS.items(), key=lambda kv: -kv[1])),
             "per status: " + ", ".join(f"{k}={v}" for k, v in sorted(collections.Counter(
                 a.status for a in matrix).items())),
             f"attempts with problems: {sum(1 for a in matrix if a.problems)}"]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert len(matrix) >= MIN_ATTEMPTS
