"""Hostile input against the secure API server, as the system admin and as a tenant user.

Malformed JSON and YAML, wrong content types, oversize and lying bodies, path
traversal, invalid and look-alike names, unicode tricks, absurd query
parameters and headers.  Every case must get a clear 4xx answer with a Status
body (kind Status, code, reason, message) in bounded time: never a 5xx,
never a hang, and the server must keep serving (/readyz and a normal GET are
checked after every batch).  Requests are written byte by byte on a TLS
socket, so nothing on the client side cleans them up first.

No case may create anything in the system tenant as a tenant user; the last
test looks for every marker these tests used there.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

RBAC = "rbac.authorization.k8s.io"
TIMEOUT = 10.0
_RUN = uuid.uuid4().hex[:8]
# In the names and labels of everything these tests try to create, one marker per identity.
MARKS = {"admin": f"hxa{_RUN}", "tenant": f"hxt{_RUN}"}


# ----------------------------------------------------------------------------------------------
# Raw HTTPS


@dataclass
class Response:
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed: float = 0.0
    error: str = ""  # "hang" or a connection failure, when there was no full answer

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _context(secure, cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(secure.pki.ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def _dechunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out


def _complete(data: bytes) -> bool:
    """Whether `data` holds one whole response (a server may rightly keep the connection open)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length" and v.strip().isdigit():
            return len(body) >= int(v)
        if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
            return body.endswith(b"0\r\n\r\n")
    return False


def send_raw(secure, cert, raw: bytes, *, timeout: float = TIMEOUT, read_for: float | None = None) -> Response:
    """Send bytes as they are and read the answer until the server closes (we ask it to).

    `read_for`: stop reading after that many seconds and report what came (for endless watches
    and for requests the server rightly waits on).
    """
    resp = Response()
    t0 = time.monotonic()
    data = b""
    try:
        sock = socket.create_connection(("127.0.0.1", secure.server.port), timeout=timeout)
        with _context(secure, cert).wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            tls.settimeout(min(timeout, read_for) if read_for else timeout)
            tls.sendall(raw)
            while True:
                try:
                    chunk = tls.recv(1 << 16)
                except TimeoutError:
                    if read_for is None:
                        resp.error = f"hang: no complete answer within {timeout} s"
                    break
                if not chunk:
                    break
                data += chunk
                if _complete(data) or (read_for is not None and time.monotonic() - t0 > read_for):
                    break
    except (OSError, ssl.SSLError) as exc:
        if not data:
            resp.error = f"connection failed: {exc!r}"
    resp.elapsed = time.monotonic() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if lines and lines[0].startswith(b"HTTP/"):
        parts = lines[0].split(b" ", 2)
        resp.status = int(parts[1])
        resp.reason = parts[2].decode(errors="replace") if len(parts) > 2 else ""
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            resp.headers[k.decode(errors="replace").strip().lower()] = v.decode(errors="replace").strip()
        resp.body = body
        if resp.headers.get("transfer-encoding") == "chunked":
            try:
                resp.body = _dechunk(body)
            except ValueError:
                resp.error = f"a malformed chunked answer: {body[:300]!r}"
    elif data and not resp.error:
        resp.error = f"not an HTTP answer: {data[:100]!r}"
    return resp


def build(method: str, target: str | bytes, body: bytes | None = None, headers: dict | None = None,
          content_length: str | None = None) -> bytes:
    """One request.  `target` goes on the wire as given (str: UTF-8); Content-Length follows the body
    unless `content_length` says otherwise (or headers carry their own)."""
    hdrs: dict[str, str | bytes] = {"Host": "127.0.0.1", "Connection": "close", "User-Agent": "hostile-test"}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    if content_length is not None:
        hdrs["Content-Length"] = content_length
    elif body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    t = target.encode() if isinstance(target, str) else target
    head = method.encode() + b" " + t + b" HTTP/1.1\r\n"
    for k, v in hdrs.items():
        if v is None:
            continue
        head += k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
    return head + b"\r\n" + (body or b"")


# ----------------------------------------------------------------------------------------------
# Cases and their checks


@dataclass
class Case:
    name: str
    method: str
    target: str | bytes
    body: bytes | None = None
    headers: dict | None = None
    content_length: str | None = None
    expect: tuple[int, ...] = (400,)  # allowed statuses
    who: str = "admin"  # admin | tenant
    raw: bytes | None = None  # the whole request, when even `build` is too polite
    timeout: float = TIMEOUT
    read_for: float | None = None
    status_body: bool = True  # the answer must be a Status
    max_seconds: float | None = None  # an answer slower than this is a problem (a stalled server)
    # Broken HTTP framing that never becomes a request: the HTTP parser answers (aiohttp's, like Go's
    # net/http for kube-apiserver) with a plain-text 400.  Still a 4xx in bounded time, and the server
    # must keep serving; a Status body is not required.
    protocol: bool = False
    own_items_only: bool = False  # a 200 list must hold the caller's tenant's objects only

    def __post_init__(self) -> None:
        if self.protocol:
            self.status_body = False


@dataclass
class Env:
    secure: Any
    admin: Any
    tenant: str
    user: Any  # the tenant user's certificate pair (a tenant-wide admin of its own tenant)

    def cert(self, who: str):
        return self.admin if who == "admin" else self.user

    def revision(self) -> int:
        """A revision a little in the past: lists continued from it are served from etcd."""
        resp = send_raw(self.secure, self.admin, build("GET", "/api/v1/tenants/all/configmaps?limit=1"))
        return int(resp.json()["metadata"]["resourceVersion"]) - 1


def check_status_body(resp: Response) -> list[str]:
    body = resp.json()
    if not isinstance(body, dict) or body.get("kind") != "Status":
        return [f"the answer is not a Status: {resp.body[:200]!r}"]
    missing = [k for k in ("code", "reason", "message") if not body.get(k)]
    problems = [f"the Status has no {', '.join(missing)}"] if missing else []
    if body.get("code") != resp.status:
        problems.append(f"Status code {body.get('code')} differs from the HTTP status {resp.status}")
    return problems


def run_case(env: Env, case: Case) -> tuple[Response, list[str]]:
    raw = case.raw if case.raw is not None else build(case.method, case.target, case.body, case.headers,
                                                      case.content_length)
    resp = send_raw(env.secure, env.cert(case.who), raw, timeout=case.timeout, read_for=case.read_for)
    problems: list[str] = []
    if resp.error:
        problems.append(resp.error)
    elif resp.status >= 500 and resp.status not in case.expect:
        problems.append(f"server error {resp.status}")
    elif resp.status not in case.expect:
        problems.append(f"expected {'/'.join(map(str, case.expect))}, got {resp.status}")
    if resp.status and case.status_body and resp.status >= 400:
        problems += check_status_body(resp)
    target = case.target if isinstance(case.target, str) else case.target.decode(errors="replace")
    if resp.status == 200 and case.own_items_only:
        mine = env.tenant if case.who == "tenant" else "system"
        foreign = [(i["metadata"].get("tenant"), i["metadata"]["name"]) for i in (resp.json() or {}).get("items", [])
                   if i["metadata"].get("tenant") != mine]
        if foreign:
            problems.append(f"the list holds objects of other tenants: {foreign[:5]}")
    if resp.status == 200 and "watch=1" in target:
        # A watch stream is newline-delimited events, nothing else (an error after the stream
        # started must be an ERROR event, not a second HTTP response inside the stream).
        for line in resp.body.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                if case.read_for is None:  # a stream cut off by the client may end mid-line
                    problems.append(f"the watch stream holds a line that is not an event: {line[:200]!r}")
                continue
            if not isinstance(event, dict) or "type" not in event or "object" not in event:
                problems.append(f"the watch stream holds a line that is not an event: {line[:200]!r}")
    if case.max_seconds is not None and resp.elapsed > case.max_seconds:
        problems.append(f"took {resp.elapsed:.2f} s (limit {case.max_seconds} s)")
    return resp, problems


def still_serving(env: Env) -> list[str]:
    problems = []
    ready = send_raw(env.secure, None, build("GET", "/readyz"), timeout=5)
    if ready.status != 200 or ready.body.strip() != b"ok":
        problems.append(f"/readyz after the batch: {ready.status} {ready.error} {ready.body[:200]!r}")
    normal = send_raw(env.secure, env.admin, build("GET", "/api/v1/namespaces/default"), timeout=5)
    if normal.status != 200 or (normal.json() or {}).get("kind") != "Namespace":
        problems.append(f"GET /api/v1/namespaces/default after the batch: {normal.status} {normal.error}")
    mine = send_raw(env.secure, env.user, build("GET", "/api/v1/namespaces/default/configmaps"), timeout=5)
    if mine.status != 200:
        problems.append(f"the tenant user's GET after the batch: {mine.status} {mine.error} {mine.body[:200]!r}")
    return problems


def run_batch(env: Env, cases: list[Case], parallel: int = 8) -> None:
    """Run the cases (several at a time; none depends on another), then check the server still serves."""
    report = []
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda c: run_case(env, c), cases))
    for case, (resp, problems) in zip(cases, results, strict=True):
        if problems:
            target = case.target if isinstance(case.target, str) else case.target.decode(errors="replace")
            body = (case.body or b"")[:120]
            report.append(f"[{case.name}] as {case.who}: {case.method} {target[:160]!r}"
                          + (f" body {body!r}{'...' if case.body and len(case.body) > 120 else ''}"
                             f" ({len(case.body)} bytes)" if case.body else "")
                          + f" -> {resp.status} {resp.reason} in {resp.elapsed:.2f} s: {resp.body[:240]!r}"
                          + "\n    => " + "; ".join(problems))
        COUNT["cases"] += 1
    after = still_serving(env)
    if after:
        report.append("the server stopped serving: " + "; ".join(after))
    assert not report, f"{len(report)} of {len(cases)} hostile requests were mishandled:\n" + "\n".join(report)


COUNT = {"cases": 0}


# ----------------------------------------------------------------------------------------------
# The tenant and its user


@pytest.fixture(scope="module")
def env(secure) -> Env:
    # A name after "system" in key order: a list range that escapes its prefix upwards would reach it.
    tenant = f"zhostile{uuid.uuid4().hex[:6]}"
    e = Env(secure, secure.pki.admin, tenant, secure.pki.tenant_client(tenant, "admin"))

    def admin_post(path: str, body: dict) -> None:
        resp = send_raw(secure, e.admin, build("POST", path, json.dumps(body).encode()))
        assert resp.status in (201, 409), (path, resp.status, resp.body[:300])

    admin_post("/api/v1/tenants", {"metadata": {"name": tenant}})
    admin_post(f"/api/v1/tenants/{tenant}/namespaces", {"metadata": {"name": "default"}})
    admin_post(f"/apis/{RBAC}/v1/tenants/{tenant}/clusterroles",
               {"metadata": {"name": "everything"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    admin_post(f"/apis/{RBAC}/v1/tenants/{tenant}/clusterrolebindings",
               {"metadata": {"name": "everything"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "everything"},
                "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "admin"}]})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # RBAC follows the watch cache
        if send_raw(secure, e.user, build("GET", "/api/v1/namespaces/default/configmaps")).status == 200:
            break
        time.sleep(0.05)
    return e


WHO = ("admin", "tenant")
CM = "/api/v1/namespaces/default/configmaps"


def cm_body(name: str, mark: str = "", **extra: Any) -> bytes:
    mark = mark or next(m for m in MARKS.values() if name.startswith(m))
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "labels": {"hostile": mark}},
                       "data": {"k": "v"}, **extra}).encode()


# ----------------------------------------------------------------------------------------------
# Malformed bodies


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize("who", WHO)
def test_malformed_json(env: Env, who: str) -> None:
    m = MARKS[who]
    name = f"{m}-json-{who}"
    good = cm_body(name).decode()
    deep_arrays = '{"metadata":{"name":"' + name + '"},"data":{"k":' + nested(100_000) + "}}"
    deep_objects = '{"metadata":{"name":"' + name + '"},"x":' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}"
    cases = [
        Case("truncated", "POST", CM, good[: len(good) // 2].encode()),
        Case("truncated after a key", "POST", CM, b'{"metadata": {"name": "x"'),
        Case("trailing garbage", "POST", CM, (good + " garbage").encode()),
        Case("two documents", "POST", CM, (good + good).encode()),
        Case("NaN", "POST", CM, good.replace('"v"', "NaN").encode()),
        Case("Infinity", "POST", CM, good.replace('"v"', "Infinity").encode()),
        Case("-Infinity", "POST", CM, good.replace('"v"', "-Infinity").encode()),
        Case("1e400", "POST", CM, good.replace('"v"', "1e400").encode()),
        Case("-1e400 in metadata", "POST", CM,
             ('{"metadata":{"name":"' + name + '","generation":-1e400}}').encode()),
        Case("huge integer", "POST", CM, good.replace('"v"', "1" + "0" * 400).encode(), expect=(400, 422)),
        Case("huge integer as generation", "POST", CM,
             ('{"metadata":{"name":"' + name + 'x","generation":' + "9" * 400 + "}}").encode(), expect=(400, 422)),
        Case("100k nested arrays", "POST", CM, deep_arrays.encode()),
        Case("100k nested objects", "POST", CM, deep_objects.encode()),
        Case("100k nested arrays as YAML", "POST", CM, deep_arrays.encode(),
             headers={"Content-Type": "application/yaml"}),
        Case("100k nested flow mappings as YAML", "POST", CM, deep_objects.encode(),
             headers={"Content-Type": "application/yaml"}),
        Case("100k nested block sequences as YAML", "POST", CM,
             ("metadata: {name: " + name + "}\ndata:\n  k: " + "- " * 20_000 + "x\n").encode(),
             headers={"Content-Type": "application/yaml"}),
        Case("100k nested arrays in a merge patch", "PATCH", f"{CM}/{name}", deep_arrays.encode(),
             headers={"Content-Type": "application/merge-patch+json"}, expect=(400, 404)),
        Case("100k nested arrays in a JSON patch", "PATCH", f"{CM}/{name}", nested(100_000).encode(),
             headers={"Content-Type": "application/json-patch+json"}, expect=(400, 404)),
        Case("100k nested arrays in an apply patch", "PATCH", f"{CM}/{name}?fieldManager=t", deep_arrays.encode(),
             headers={"Content-Type": "application/apply-patch+yaml"}),
        Case("duplicate keys, strict", "POST", f"{CM}?fieldValidation=Strict",
             ('{"metadata":{"name":"' + name + 'a","name":"' + name + 'b"},"data":{"k":"v"}}').encode()),
        Case("empty body", "POST", CM, b""),
        Case("null", "POST", CM, b"null"),
        Case("array", "POST", CM, b"[]"),
        Case("string", "POST", CM, b'"configmap"'),
        Case("number", "POST", CM, b"42"),
        Case("byte order mark", "POST", CM, b"\xef\xbb\xbf" + good.encode(), expect=(400, 201)),
        Case("invalid UTF-8 in a string", "POST", CM, good.replace('"v"', '"\xff\xfe"').encode("latin-1")),
        Case("lone surrogate escape", "POST", CM, good.replace('"v"', '"\\ud800"').encode()),
        Case("NUL escape in the name", "POST", CM, cm_body(name + "\u0000x"), expect=(400, 422)),
        Case("raw NUL byte in the body", "POST", CM, good.encode().replace(b'"v"', b'"v\x00"')),
        Case("metadata is a string", "POST", CM, b'{"metadata":"x"}', expect=(400, 422)),
        Case("metadata.name is an object", "POST", CM, b'{"metadata":{"name":{"a":1}}}', expect=(400, 422)),
        Case("labels is a list", "POST", CM,
             ('{"metadata":{"name":"' + name + '","labels":["a"]}}').encode(), expect=(400, 422)),
        Case("data is a list", "POST", CM, ('{"metadata":{"name":"' + name + '"},"data":[1]}').encode(),
             expect=(400, 422)),
        Case("malformed JSON in a merge patch", "PATCH", f"{CM}/{name}", b'{"metadata":',
             headers={"Content-Type": "application/merge-patch+json"}, expect=(400, 404)),
        Case("JSON patch not a list", "PATCH", f"{CM}/kube-root-ca.crt", b'{"op":"add"}',
             headers={"Content-Type": "application/json-patch+json"}, expect=(400, 404, 422)),
        Case("JSON patch with a bad op", "PATCH", f"{CM}/kube-root-ca.crt", b'[{"op":"explode","path":"/a"}]',
             headers={"Content-Type": "application/json-patch+json"}, expect=(400, 404, 422)),
        Case("malformed YAML apply", "PATCH", f"{CM}/{name}?fieldManager=t", b"metadata: [unclosed",
             headers={"Content-Type": "application/apply-patch+yaml"}),
        Case("YAML with a Python tag", "POST", CM,
             b"metadata: {name: x}\ndata: !!python/object/apply:os.system ['true']\n",
             headers={"Content-Type": "application/yaml"}),
        Case("YAML binary tag", "POST", CM, b"metadata: {name: x}\ndata: {k: !!binary aGVsbG8=}\n",
             headers={"Content-Type": "application/yaml"}, expect=(400, 422)),
        Case("malformed delete options", "DELETE", f"{CM}/{name}", b'{"gracePeriodSeconds": "soon"',
             expect=(400, 404)),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


def bomb(levels: int, name: str, key: str = "extra", mark: str = MARKS["admin"]) -> bytes:
    """The "billion laughs": each anchor repeats the previous one ten times; 10**levels strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for c in "bcdefghijk"[: levels - 1]:
        lines.append(f"{c}: &{c} [" + ",".join(["*" + prev] * 10) + "]")
        prev = c
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{hostile: {mark}}}}}\n"
            "anchors:\n" + "\n".join("  " + line for line in lines) + f"\n{key}: *{prev}\n").encode()


def test_yaml_alias_bombs_are_refused_cheaply(env: Env) -> None:
    """A few hundred bytes of YAML aliases must not expand into hundreds of megabytes (CVE-2019-11253).

    Kubernetes limits alias expansion while decoding YAML and answers 400 at once.  The cases
    stay at 10**7 (create) and 10**6 (apply) strings, which a server can survive even without a
    limit; each level more costs ten times the time and memory.
    """
    m = MARKS["admin"]
    cases = [
        Case("YAML alias bomb, 10**7 strings, create", "POST", CM, bomb(7, f"{m}-bomb7"),
             headers={"Content-Type": "application/yaml"}, expect=(400, 413, 422), max_seconds=0.5),
        Case("YAML alias bomb, 10**6 strings, apply", "PATCH", f"{CM}/{m}-bomb6?fieldManager=t",
             bomb(6, f"{m}-bomb6"), headers={"Content-Type": "application/apply-patch+yaml"},
             expect=(400, 413, 422), max_seconds=0.5),
    ]
    run_batch(env, cases, parallel=1)


@pytest.mark.parametrize("who", WHO)
def test_wrong_content_types(env: Env, who: str) -> None:
    m = MARKS[who]
    name = f"{m}-ct-{who}"
    body = cm_body(name)
    merge = b'{"metadata":{"labels":{"x":"y"}}}'
    cases = [
        Case("text/html", "POST", CM, body, headers={"Content-Type": "text/html"}, expect=(415,)),
        Case("application/xml", "POST", CM, body, headers={"Content-Type": "application/xml"}, expect=(415,)),
        # Protobuf is understood (kubectl 1.32+ sends it): a JSON body labelled so is a bad protobuf body.
        Case("JSON as protobuf", "POST", CM, body, headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
             expect=(400,)),
        Case("multipart", "POST", CM, body, headers={"Content-Type": "multipart/form-data; boundary=x"},
             expect=(415,)),
        Case("form", "POST", CM, b"metadata=x", headers={"Content-Type": "application/x-www-form-urlencoded"},
             expect=(415,)),
        Case("JSON body as YAML type with JSON errors", "POST", CM, b'{"metadata": {"name": [}',
             headers={"Content-Type": "application/yaml"}),
        Case("PATCH as application/json", "PATCH", f"{CM}/{name}", merge, expect=(415,)),
        Case("PATCH as text/plain", "PATCH", f"{CM}/{name}", merge, headers={"Content-Type": "text/plain"},
             expect=(415,)),
        Case("PATCH without a content type", "PATCH", f"{CM}/{name}", merge, headers={"Content-Type": None},
             expect=(415,)),
        Case("apply without fieldManager", "PATCH", f"{CM}/{name}", body,
             headers={"Content-Type": "application/apply-patch+yaml"}),
        Case("JSON patch body as merge patch type", "PATCH", f"{CM}/{name}", b'[{"op":"add"}]',
             headers={"Content-Type": "application/merge-patch+json"}, expect=(400, 404, 422)),
        Case("strategic merge patch on a custom-resource-like list", "PATCH", f"{CM}/{name}", b"[1,2]",
             headers={"Content-Type": "application/strategic-merge-patch+json"}, expect=(400, 404, 422)),
        Case("Accept application/xml", "GET", CM, headers={"Accept": "application/xml"}, expect=(406,)),
        Case("Accept protobuf only", "GET", CM, headers={"Accept": "application/vnd.kubernetes.protobuf"},
             expect=(406,)),
        Case("Accept Table of a bogus group", "GET", CM,
             headers={"Accept": "application/json;as=Table;v=v1;g=evil.example.com"}, expect=(406,)),
        Case("Accept with unparsable parameters", "GET", CM, headers={"Accept": "application/json;;;==;as"},
             expect=(200, 406)),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


@pytest.mark.parametrize("who", WHO)
def test_oversize_bodies(env: Env, who: str) -> None:
    """Bodies over 3 MiB get 413 with a Status; so do objects etcd could not store."""
    m = MARKS[who]
    name = f"{m}-big-{who}"
    big = "x" * (3 * 1024 * 1024 + 100)

    def chunked(payload: bytes, size: int = 1 << 16) -> bytes:
        return b"".join(b"%x\r\n" % len(payload[i:i + size]) + payload[i:i + size] + b"\r\n"
                        for i in range(0, len(payload), size)) + b"0\r\n\r\n"

    body = cm_body(name, data={"k": big})
    two_mib = cm_body(name + "-2m", data={"k": "y" * (2 * 1024 * 1024)})
    cases = [
        Case("3 MiB + 100 create", "POST", CM, body, expect=(413,)),
        Case("3 MiB + 100 update", "PUT", f"{CM}/{name}", body, expect=(413,)),
        Case("3 MiB + 100 merge patch", "PATCH", f"{CM}/{name}", body,
             headers={"Content-Type": "application/merge-patch+json"}, expect=(413,)),
        Case("3 MiB + 100 apply", "PATCH", f"{CM}/{name}?fieldManager=t", body,
             headers={"Content-Type": "application/apply-patch+yaml"}, expect=(413,)),
        Case("3 MiB + 100 delete options", "DELETE", f"{CM}/{name}", body, expect=(413,)),
        Case("3 MiB + 100 chunked, no Content-Length", "POST", CM, chunked(body),
             headers={"Transfer-Encoding": "chunked"}, expect=(413,)),
        Case("Content-Length of 10 GiB, no body sent", "POST", CM, b"", content_length=str(10 << 30),
             expect=(413,)),
        Case("2 MiB object: under the body limit, over etcd's request limit", "POST", CM, two_mib,
             expect=(413, 422)),
        Case("pod with 1 MB of VM userData", "POST", "/api/v1/namespaces/default/pods", json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-vm", "labels": {"hostile": m}},
            "spec": {"virtualMachine": {"name": "vm", "image": "cirros", "keyPairName": "k",
                                        "userData": base64.b64encode(b"u" * 1_000_000).decode()}}}).encode(),
             expect=(422,)),
        Case("pod with 1 MB of VM userData, not base64", "POST", "/api/v1/namespaces/default/pods", json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-vm2", "labels": {"hostile": m}},
            "spec": {"virtualMachine": {"name": "vm", "image": "cirros", "keyPairName": "k",
                                        "userData": "%" * 1_000_000}}}).encode(), expect=(422,)),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


# ----------------------------------------------------------------------------------------------
# Paths and names


@pytest.mark.parametrize("who", WHO)
def test_path_traversal(env: Env, who: str) -> None:
    m = MARKS[who]
    cases = [
        Case("raw ../../etc", "GET", "/api/v1/namespaces/../../etc", expect=(400, 404)),
        Case("raw .. as a name", "GET", f"{CM}/..", expect=(400, 404)),
        Case("raw . as a name", "GET", f"{CM}/.", expect=(400, 404)),
        Case("%2e%2e as a name", "GET", f"{CM}/%2e%2e", expect=(400, 404)),
        Case("%2E%2E as a namespace", "GET", "/api/v1/namespaces/%2E%2E/configmaps", expect=(400, 404)),
        Case("..%2F..%2Fsecrets", "GET", f"{CM}/..%2F..%2Fsecrets", expect=(400, 404)),
        Case("%2F in a name", "GET", f"{CM}/a%2Fb", expect=(400, 404)),
        Case("%2F in a name, delete", "DELETE", f"{CM}/a%2F..%2F..%2Fsecrets%2Fx", expect=(400, 404)),
        Case("%252F double-encoded", "GET", f"{CM}/a%252Fb", expect=(400, 404)),
        Case("%5C backslash", "GET", f"{CM}/..%5C..%5Cx", expect=(400, 404)),
        Case("raw backslash", "GET", f"{CM}/..\\..\\x", expect=(400, 404)),
        Case("%00 in a name", "GET", f"{CM}/a%00b", expect=(400, 404)),
        Case("raw NUL in the path", "GET", CM.encode() + b"/a\x00b", expect=(400, 404), protocol=True),
        Case("tenant ..%2Fsystem", "GET", "/api/v1/tenants/..%2Fsystem/namespaces/default/configmaps",
             expect=(400, 403, 404)),
        Case("tenant .. then namespaces", "GET", "/api/v1/tenants/../namespaces/default/configmaps",
             expect=(400, 403, 404)),
        Case("traversal to another group", "GET", "/api/v1/namespaces/default/../../../apis/apps/v1/deployments",
             expect=(400, 404)),
        Case("create with name ..", "POST", CM, cm_body("..", m), expect=(400, 422)),
        Case("create with name ../x", "POST", CM, cm_body("../x", m), expect=(400, 422)),
        Case("create with name a/b", "POST", CM, cm_body("a/b", m), expect=(400, 422)),
        Case("create with name %2e%2e", "POST", CM, cm_body("%2e%2e", m), expect=(400, 422)),
        Case("create with namespace ../kube-system", "POST", "/api/v1/configmaps",
             json.dumps({"metadata": {"name": f"{m}-ns", "namespace": "../kube-system"}}).encode(),
             expect=(400, 404, 405, 422)),
        Case("create with tenant ../system", "POST", CM,
             json.dumps({"metadata": {"name": f"{m}-t", "tenant": "../system"}}).encode(), expect=(400, 403, 422)),
        Case("namespace create named ..", "POST", "/api/v1/namespaces",
             json.dumps({"metadata": {"name": ".."}}).encode(), expect=(400, 422)),
        Case("very long name in the path", "GET", f"{CM}/{'a' * 5000}", expect=(400, 404, 414)),
        Case("very long path", "GET", "/api/v1/" + "a/" * 4000, expect=(400, 404, 414)),
        Case("unknown subresource", "GET", f"{CM}/x/../../secrets", expect=(400, 404)),
        Case("too many segments", "GET", f"{CM}/a/b/c/d/e", expect=(400, 404)),
        Case("absolute-form target (HTTP/1.1 allows it)", "GET", "https://evil.example.com/api/v1/namespaces",
             expect=(200, 400, 404)),
        Case("asterisk target", "GET", "*", expect=(400, 404), protocol=True),
        Case("target without a slash", "GET", "api/v1/namespaces", expect=(400, 404), protocol=True),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


@pytest.mark.parametrize("who", WHO)
def test_invalid_tenant_and_namespace_names(env: Env, who: str) -> None:
    m = MARKS[who]
    long = "a" * 254
    t = env.tenant if who == "tenant" else "system"
    read = (400, 403, 404)
    cases = [
        Case("uppercase tenant in the path", "GET", f"/api/v1/tenants/{t.upper()}/namespaces/default/configmaps/x",
             expect=read),
        Case("uppercase namespace in the path", "GET", "/api/v1/namespaces/DEFAULT/configmaps/x", expect=read),
        Case("254-char tenant in the path", "GET", f"/api/v1/tenants/{long}/namespaces/default/configmaps/x",
             expect=read),
        Case("254-char namespace in the path", "GET", f"/api/v1/namespaces/{long}/configmaps/x", expect=read),
        Case("create in an uppercase namespace", "POST", "/api/v1/namespaces/DEFAULT/configmaps",
             cm_body(f"{m}-upper"), expect=(400, 404, 422)),
        Case("create in a 254-char namespace", "POST", f"/api/v1/namespaces/{long}/configmaps",
             cm_body(f"{m}-long"), expect=(400, 404, 422)),
        Case("namespace named uppercase", "POST", "/api/v1/namespaces",
             json.dumps({"metadata": {"name": f"UP{m}", "labels": {"hostile": m}}}).encode(),
             expect=(400, 422)),
        Case("namespace named 254 chars", "POST", "/api/v1/namespaces",
             json.dumps({"metadata": {"name": long, "labels": {"hostile": m}}}).encode(), expect=(400, 422)),
        Case("tenant named uppercase", "POST", "/api/v1/tenants",
             json.dumps({"metadata": {"name": f"UP{m}", "labels": {"hostile": m}}}).encode(),
             expect=(400, 403, 422)),
        Case("tenant named 254 chars", "POST", "/api/v1/tenants",
             json.dumps({"metadata": {"name": long}}).encode(), expect=(400, 403, 422)),
        Case("tenant named all", "POST", "/api/v1/tenants", json.dumps({"metadata": {"name": "all"}}).encode(),
             expect=(400, 403, 409, 422)),
        Case("tenant named empty", "POST", "/api/v1/tenants", json.dumps({"metadata": {"name": ""}}).encode(),
             expect=(400, 403, 422)),
        Case("empty tenant segment", "GET", "/api/v1/tenants//namespaces/default/configmaps", expect=read),
        Case("empty namespace segment", "GET", "/api/v1/namespaces//configmaps/x", expect=read),
        Case("empty namespace segment, create", "POST", "/api/v1/namespaces//configmaps", cm_body(f"{m}-e"),
             expect=(400, 404, 405)),
        Case("empty namespace segment, delete collection", "DELETE", "/api/v1/namespaces//configmaps",
             expect=(400, 404, 405)),
        Case("empty tenant segment, create", "POST", "/api/v1/tenants//namespaces/default/configmaps",
             cm_body(f"{m}-et"), expect=(400, 403, 404, 405)),
        Case("tenant path with a space", "GET", "/api/v1/tenants/sys%20tem/namespaces/default/configmaps/x",
             expect=read),
        Case("list in a tenant named all, by name", "GET", "/api/v1/tenants/all/namespaces/default/configmaps/x",
             expect=(400, 403, 404)),
        Case("write to tenant all", "POST", "/api/v1/tenants/all/namespaces/default/configmaps",
             cm_body(f"{m}-all"), expect=(400, 403)),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


HOMOGLYPHS = {
    "cyrillic s": "\u0455ystem",
    "cyrillic e": "syst\u0435m",
    "fullwidth": "\uff53\uff59\uff53\uff54\uff45\uff4d",
    "zero-width joiner": "sys\u200dtem",
    "zero-width space": "sys\u200btem",
    "RTL override": "\u202emetsys",
    "trailing NUL": "system\u0000",
    "combining dot": "system\u0307",
    "dotless i in kube-system": "kube-syst\u0435m",
}


def q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


@pytest.mark.parametrize("who", WHO)
def test_unicode_tricks(env: Env, who: str) -> None:
    m = MARKS[who]
    cases: list[Case] = []
    for label, trick in HOMOGLYPHS.items():
        enc = q(trick)
        cases += [
            Case(f"{label}: tenant in the path, list", "GET", f"/api/v1/tenants/{enc}/namespaces/default/configmaps",
                 expect=(200, 400, 403, 404)),
            Case(f"{label}: tenant in the path, create", "POST",
                 f"/api/v1/tenants/{enc}/namespaces/default/configmaps", cm_body(f"{m}-u1"),
                 expect=(400, 403, 404, 422)),
            Case(f"{label}: tenant in the body", "POST", CM,
                 json.dumps({"metadata": {"name": f"{m}-u2", "tenant": trick, "labels": {"hostile": m}}})
                 .encode(), expect=(400, 403, 422)),
            Case(f"{label}: namespace in the path, create", "POST", f"/api/v1/namespaces/{enc}/configmaps",
                 cm_body(f"{m}-u3"), expect=(400, 404, 422)),
            Case(f"{label}: a namespace of that name", "POST", "/api/v1/namespaces",
                 json.dumps({"metadata": {"name": trick, "labels": {"hostile": m}}}).encode(), expect=(400, 422)),
            Case(f"{label}: a tenant of that name", "POST", "/api/v1/tenants",
                 json.dumps({"metadata": {"name": trick, "labels": {"hostile": m}}}).encode(),
                 expect=(400, 403, 422)),
            Case(f"{label}: in a name", "POST", CM, cm_body(f"{m}-{trick}"), expect=(400, 422)),
            Case(f"{label}: in a label value", "POST", CM,
                 json.dumps({"metadata": {"name": f"{m}-u4", "labels": {"hostile": m, "k": trick}}}).encode(),
                 expect=(400, 422)),
            Case(f"{label}: in a label key", "POST", CM,
                 json.dumps({"metadata": {"name": f"{m}-u5", "labels": {"hostile": m, trick: "v"}}}).encode(),
                 expect=(400, 422)),
            Case(f"{label}: in a label selector", "GET", f"{CM}?labelSelector={q('k=' + trick)}",
                 expect=(200, 400)),
            Case(f"{label}: in a field selector", "GET", f"{CM}?fieldSelector={q('metadata.tenant=' + trick)}",
                 expect=(200, 400)),
        ]
    cases += [
        Case("invalid UTF-8 bytes in the path", "GET", b"/api/v1/namespaces/\xff\xfe/configmaps", expect=(400, 404),
             protocol=True),
        Case("invalid UTF-8 percent-encoded in the path", "GET", "/api/v1/namespaces/%ff%fe/configmaps",
             expect=(200, 400, 404)),
        Case("invalid UTF-8 percent-encoded tenant", "GET", "/api/v1/tenants/%ff/namespaces/default/configmaps",
             expect=(400, 403, 404)),
        Case("overlong UTF-8 slash", "GET", "/api/v1/namespaces/default%c0%afconfigmaps", expect=(400, 404)),
        Case("invalid UTF-8 percent-encoded in a query", "GET", f"{CM}?labelSelector=%ff%fe", expect=(400,)),
        Case("invalid UTF-8 bytes in a label value", "POST", CM,
             b'{"metadata":{"name":"' + m.encode() + b'-u6","labels":{"k":"\xc0\xaf"}}}'),
        Case("NUL in a label value", "POST", CM,
             json.dumps({"metadata": {"name": f"{m}-u7", "labels": {"k": "a\u0000b"}}}).encode(),
             expect=(400, 422)),
        Case("RTL override in an annotation key", "POST", CM,
             json.dumps({"metadata": {"name": f"{m}-u8", "annotations": {"\u202ekey": "v"}}}).encode(),
             expect=(400, 422)),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


# ----------------------------------------------------------------------------------------------
# Query parameters and headers


@pytest.mark.parametrize("who", WHO)
def test_query_parameters_and_selectors(env: Env, who: str) -> None:
    m = MARKS[who]
    watch = f"{CM}?watch=1"
    cases = [
        Case("resourceVersion=-1 list", "GET", f"{CM}?resourceVersion=-1"),
        Case("resourceVersion=-1 watch", "GET", f"{watch}&resourceVersion=-1&timeoutSeconds=1", expect=(400, 410)),
        Case("resourceVersion=-1 get", "GET", f"{CM}/kube-root-ca.crt?resourceVersion=-1", expect=(400, 404)),
        Case("resourceVersion=abc", "GET", f"{CM}?resourceVersion=abc"),
        Case("resourceVersion=1e400", "GET", f"{CM}?resourceVersion=1e400"),
        Case("resourceVersion huge integer", "GET", f"{CM}?resourceVersion={'9' * 400}", expect=(400, 504)),
        # Kubernetes waits a few seconds for a future revision, then answers 504 (reason Timeout).
        Case("resourceVersion far future", "GET", f"{CM}?resourceVersion=99999999999999", expect=(400, 504),
             max_seconds=5),
        Case("limit=-5", "GET", f"{CM}?limit=-5"),
        Case("limit=abc", "GET", f"{CM}?limit=abc"),
        Case("limit=1e400", "GET", f"{CM}?limit=1e400"),
        Case("limit huge", "GET", f"{CM}?limit={'9' * 400}", expect=(200, 400)),
        Case("continue garbage", "GET", f"{CM}?continue=%%%garbage"),
        Case("continue valid base64, wrong content", "GET", f"{CM}?continue=" + base64.urlsafe_b64encode(
            b'{"rv": "x", "start": 5}').decode()),
        # A continue token is the client's to send back; a forged one must not move the list out of the
        # caller's tenant.  An older revision makes the server page from etcd instead of its cache.
        *[Case(f"forged continue token starting at {start}", "GET", f"{CM}?limit=500&continue="
               + base64.urlsafe_b64encode(json.dumps({"rv": env.revision(), "start": start}).encode()).decode(),
               expect=(200, 400, 410), own_items_only=True)
          for start in ("/registry/configmaps/", "/registry/configmaps/system/", "/registry/", "\u0000",
                        "/registry/configmaps/system/default/")],
        Case("timeoutSeconds=99999999999 watch", "GET", f"{watch}&timeoutSeconds=99999999999",
             expect=(200,), read_for=1.5),
        Case("timeoutSeconds huge integer watch", "GET", f"{watch}&timeoutSeconds={'9' * 400}",
             expect=(200, 400), read_for=1.5),
        Case("timeoutSeconds=abc watch", "GET", f"{watch}&timeoutSeconds=abc"),
        Case("timeoutSeconds=1e400", "GET", f"{watch}&timeoutSeconds=1e400"),
        Case("gracePeriodSeconds huge", "DELETE", f"{CM}/{m}-nope?gracePeriodSeconds={'9' * 400}",
             expect=(400, 404)),
        Case("gracePeriodSeconds=-99999999999", "DELETE", f"{CM}/{m}-nope?gracePeriodSeconds=-99999999999",
             expect=(400, 404)),
        Case("propagationPolicy bogus", "DELETE", f"{CM}?propagationPolicy=Bogus&labelSelector=hostile%3D{m}",
             expect=(400, 422)),
        Case("dryRun bogus", "POST", f"{CM}?dryRun=Bogus", cm_body(f"{m}-dry")),
        Case("fieldValidation bogus", "POST", f"{CM}?fieldValidation=Bogus", cm_body(f"{m}-fv")),
        Case("fieldManager 1000 chars", "POST", f"{CM}?fieldManager={'m' * 1000}", cm_body(f"{m}-fm"),
             expect=(400, 422)),
        Case("many query parameters", "GET", CM + "?" + "&".join(f"p{i}=1" for i in range(2000)),
             expect=(200, 400, 414), protocol=True),
        Case("10k labelSelector", "GET", f"{CM}?labelSelector={'a' * 10_000}", expect=(400, 414), protocol=True),
        Case("label selector: unclosed set", "GET", f"{CM}?labelSelector={q('a in (b')}"),
        Case("label selector: !!", "GET", f"{CM}?labelSelector={q('!!')}"),
        Case("label selector: bad operator", "GET", f"{CM}?labelSelector={q('a=>b')}"),
        Case("label selector: bad key", "GET", f"{CM}?labelSelector={q('-a-=b')}"),
        Case("label selector: NUL", "GET", f"{CM}?labelSelector=a%00b%3Dc"),
        Case("label selector: gt on a string", "GET", f"{CM}?labelSelector={q('a>b')}"),
        Case("field selector: unknown field", "GET", f"{CM}?fieldSelector={q('spec.secret=x')}"),
        Case("field selector: ==,, (Kubernetes skips empty terms)", "GET",
             f"{CM}?fieldSelector={q('metadata.name==x,,')}", expect=(200, 400)),
        Case("field selector: no operator", "GET", f"{CM}?fieldSelector=metadata.name"),
        Case("field selector: hashkey gt:abc", "GET", f"{CM}?fieldSelector={q('metadata.hashkey=gt:abc')}"),
        Case("field selector: hashkey gt:1e400", "GET", f"{CM}?fieldSelector={q('metadata.hashkey=gt:1e400')}"),
        Case("field selector: hashkey huge", "GET", f"{CM}?fieldSelector={q('metadata.hashkey=gt:' + '9' * 400)}"),
        Case("field selector: gt on a name", "GET", f"{CM}?fieldSelector={q('metadata.name=gt:a')}"),
        Case("field selector: owner hashkey of no kind", "GET",
             f"{CM}?fieldSelector={q('metadata.ownerReferences.hashkey.=lte:5')}", expect=(200, 400)),
        Case("field selector: 5000 terms", "GET",
             f"{CM}?fieldSelector=" + q(",".join(f"metadata.name!=n{i}" for i in range(5000))),
             expect=(200, 400, 414), protocol=True),
        Case("watch with a bad selector", "GET", f"{watch}&timeoutSeconds=1&labelSelector={q('a in (')}"),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


@pytest.mark.parametrize("who", WHO)
def test_headers(env: Env, who: str) -> None:
    cases = [
        Case("a 100 KB header", "GET", CM, headers={"X-Big": "a" * 100_000}, expect=(400, 413, 431), protocol=True),
        Case("a 1 MB header", "GET", CM, headers={"X-Big": "a" * 1_000_000}, expect=(400, 413, 431), protocol=True),
        Case("2000 headers", "GET", CM, raw=build("GET", CM).replace(
            b"\r\n\r\n", b"\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"),
             expect=(400, 413, 431), protocol=True),
        Case("a header without a colon", "GET", CM, raw=build("GET", CM).replace(
            b"\r\n\r\n", b"\r\nNoColonHere\r\n\r\n"), protocol=True),
        Case("a header with a NUL", "GET", CM, headers={"X-Nul": "a\x00b"}, protocol=True),
        Case("a header with a bare CR", "GET", CM, headers={"X-Cr": "a\rb"}, protocol=True),
        Case("a Content-Type with control characters", "POST", CM, cm_body(f"{MARKS[who]}-hdr"),
             headers={"Content-Type": "\x01\x02/\x03"}, protocol=True),
        Case("a 100 KB Accept", "GET", CM, headers={"Accept": "application/json;" + "a=b;" * 20_000},
             expect=(400, 406, 413, 431), protocol=True),
        Case("a 16 KB request line", "GET", CM + "?x=" + "a" * 16_000, expect=(400, 414), protocol=True),
        Case("bad HTTP version", "GET", CM, raw=build("GET", CM).replace(b"HTTP/1.1", b"HTTP/9.9"),
             expect=(400, 505), protocol=True),
        Case("bad method", "EXPLODE", CM, expect=(400, 405), protocol=True),
        Case("TRACE", "TRACE", CM, expect=(400, 405)),
        Case("CONNECT", "CONNECT", "127.0.0.1:443", expect=(400, 404, 405)),
        Case("OPTIONS", "OPTIONS", CM, expect=(200, 204, 400, 405)),
        Case("front-proxy headers without the proxy's certificate", "GET", "/api/v1/tenants/all/configmaps",
             headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters",
                      "X-Remote-Extra-Tenant": "system"}, expect=(200,) if who == "admin" else (403,)),
        Case("impersonation headers", "GET", "/api/v1/tenants/all/configmaps",
             headers={"Impersonate-User": "system:admin", "Impersonate-Group": "system:masters"},
             expect=(200,) if who == "admin" else (403,)),
        Case("a bearer token with control characters next to the certificate", "GET", CM,
             headers={"Authorization": "Bearer \x01\x02garbage"}, expect=(200, 400, 401), protocol=True),
        Case("a bogus bearer token next to the certificate", "GET", CM,
             headers={"Authorization": "Bearer garbage"}, expect=(200, 401)),
        Case("a 100 KB bearer token", "GET", CM, headers={"Authorization": "Bearer " + "t" * 100_000},
             expect=(400, 401, 413, 431), protocol=True),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


@pytest.mark.parametrize("who", WHO)
def test_lying_and_broken_framing(env: Env, who: str) -> None:
    """Content-Length that lies, smuggling shapes, broken chunking, content encodings."""
    import gzip

    m = MARKS[who]
    body = cm_body(f"{m}-cl")
    post = build("POST", CM, body)
    keep_alive = {"Connection": "keep-alive"}
    cases = [
        # The server cannot know the rest is never coming; it must not answer 5xx or stop serving,
        # and it may wait (the client gives up after 3 s).
        Case("Content-Length larger than the body", "POST", CM, body, content_length=str(len(body) + 100),
             expect=(0, 400, 408), read_for=3.0, status_body=False),
        # The server reads 10 bytes of JSON as the body; what follows is garbage as a next request,
        # which the HTTP parser refuses (plain text) - nothing may be created.
        Case("Content-Length smaller than the body", "POST", CM, body, content_length="10", headers=keep_alive,
             protocol=True),
        Case("Content-Length -1", "POST", CM, body, content_length="-1", protocol=True),
        Case("Content-Length not a number", "POST", CM, body, content_length="ten", protocol=True),
        Case("Content-Length hex", "POST", CM, body, content_length="0x10", protocol=True),
        Case("two different Content-Lengths", "POST", CM, raw=post.replace(
            b"\r\n\r\n", b"\r\nContent-Length: 5\r\n\r\n", 1), protocol=True),
        Case("Content-Length and Transfer-Encoding", "POST", CM, raw=post.replace(
            b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n", 1), protocol=True),
        Case("Transfer-Encoding: gzip, chunked with a plain body", "POST", CM, body,
             headers={"Transfer-Encoding": "gzip, chunked"}, expect=(400, 415, 501), protocol=True),
        Case("chunk size not hex", "POST", CM, b"zz\r\n" + body + b"\r\n0\r\n\r\n",
             headers={"Transfer-Encoding": "chunked"}, protocol=True),
        Case("chunk size larger than the data", "POST", CM, b"ffff\r\n" + body + b"\r\n0\r\n\r\n",
             headers={"Transfer-Encoding": "chunked"}, expect=(0, 400, 408), read_for=3.0, status_body=False),
        Case("chunk size overflowing 64 bits", "POST", CM,
             b"ffffffffffffffffffffff\r\n" + body + b"\r\n0\r\n\r\n", headers={"Transfer-Encoding": "chunked"},
             expect=(400, 413), protocol=True),
        Case("Content-Encoding gzip on a plain body", "POST", CM, body, headers={"Content-Encoding": "gzip"},
             expect=(400, 415)),
        Case("Content-Encoding deflate on a plain body", "POST", CM, body, headers={"Content-Encoding": "deflate"},
             expect=(400, 415)),
        Case("Content-Encoding br on a plain body", "POST", CM, body, headers={"Content-Encoding": "br"},
             expect=(400, 415), protocol=True),
        Case("gzip bomb: 100 KB that inflate to 100 MB", "POST", CM,
             gzip.compress(b'{"metadata":{"name":"' + m.encode() + b'-gz"},"data":{"k":"' + b"0" * 100_000_000
                           + b'"}}', compresslevel=1),
             headers={"Content-Encoding": "gzip"}, expect=(400, 413, 415), max_seconds=2.0),
        Case("body on a GET", "GET", CM, b"x" * 1000, expect=(200, 400)),
    ]
    for c in cases:
        c.who = who
    run_batch(env, cases)


# ----------------------------------------------------------------------------------------------
# Nothing reached the system tenant


def test_nothing_reached_the_system_tenant(env: Env, capsys: pytest.CaptureFixture) -> None:
    """After all of the above: no object of these tests in the system tenant, no look-alike tenant,
    namespace or object anywhere outside the tenant user's own tenant."""
    problems = []
    for path in ("/api/v1/tenants/system/configmaps", "/api/v1/tenants/system/namespaces",
                 "/api/v1/tenants/system/pods", "/api/v1/tenants", "/api/v1/tenants/all/namespaces",
                 "/api/v1/tenants/all/configmaps", "/api/v1/tenants/all/pods"):
        resp = send_raw(env.secure, env.admin, build("GET", path))
        assert resp.status == 200, (path, resp.status, resp.body[:200])
        for item in resp.json()["items"]:
            meta = item["metadata"]
            name, tenant = meta["name"], meta.get("tenant", "")
            label = (meta.get("labels") or {}).get("hostile", "")
            by_tenant_user = MARKS["tenant"] in name or label == MARKS["tenant"]
            if any(trick in name or trick in tenant for trick in HOMOGLYPHS.values()):
                problems.append(f"{path}: a look-alike object {name!r} exists in tenant {tenant!r}")
            elif by_tenant_user and tenant != env.tenant:
                problems.append(f"{path}: the tenant user's {name!r} was created in tenant {tenant!r}")
            elif path == "/api/v1/tenants" and (MARKS["admin"] in name or label or not name.isascii()
                                                or name != name.lower()):
                problems.append(f"a tenant named {name!r} exists")
    with capsys.disabled():
        print(f"\nhostile input: {COUNT['cases']} cases sent")
    assert not problems, "\n".join(problems)
