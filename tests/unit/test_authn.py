"""Authentication: certificates over real TLS, token files, service-account JWTs, front proxy, union.

Every CA, certificate and key is made here, fresh, with `cryptography`; the
TLS cases run a real aiohttp server on 127.0.0.1 so the handshake, the
server's trust store and `getpeercert` are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from arktos.api import satoken
from arktos.api.errors import APIError
from arktos.api.satoken import issue_service_account_token
from arktos.apiserver import authn
from arktos.apiserver.auth import UserInfo
from arktos.apiserver.authn import (
    ANONYMOUS,
    InvalidCredentials,
    RequestHeaderAuthenticator,
    ServiceAccountAuthenticator,
    TokenFileAuthenticator,
    UnionAuthenticator,
    X509Authenticator,
    identity_from_subject,
    watch_cache_lookup,
)

NOW = dt.datetime.now(dt.UTC)


# -- throwaway PKI ---------------------------------------------------------------------------


class CA:
    def __init__(self, cn: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        cn: str,
        orgs: tuple[str, ...] = (),
        ous: tuple[str, ...] = (),
        eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
        days: tuple[float, float] = (-1, 10),
        ip: str | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, o) for o in ous]
        if cn:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if ip:
            import ipaddress

            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
        return b.sign(self.key, hashes.SHA256()), key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def write_pair(tmp: Path, name: str, cert: x509.Certificate, key: Any) -> tuple[str, str]:
    c, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return str(c), str(k)


def subject(cn: str = "", orgs: tuple[str, ...] = (), ous: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, o) for o in ous]
    if cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def req(headers: dict[str, str] | None = None) -> web.Request:
    return make_mocked_request("GET", "/api", headers=headers or {})


def bearer(token: str) -> web.Request:
    return req({"Authorization": f"Bearer {token}"})


# -- a real TLS server ------------------------------------------------------------------------


class TLSWorld:
    """Client CA, front-proxy CA, a server certificate, and a server that trusts both CAs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.client_ca = CA("client-ca")
        self.proxy_ca = CA("front-proxy-ca")
        self.server_ca = CA("server-ca")
        (tmp / "client-ca.crt").write_bytes(self.client_ca.pem())
        (tmp / "proxy-ca.crt").write_bytes(self.proxy_ca.pem())
        (tmp / "server-ca.crt").write_bytes(self.server_ca.pem())
        self.client_ca_file = str(tmp / "client-ca.crt")
        self.proxy_ca_file = str(tmp / "proxy-ca.crt")
        cert, key = self.server_ca.issue("apiserver", eku=(ExtendedKeyUsageOID.SERVER_AUTH,), ip="127.0.0.1")
        self.server_pair = write_pair(tmp, "server", cert, key)

    def server_ctx(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*self.server_pair)
        ctx.load_verify_locations(self.client_ca_file)
        ctx.load_verify_locations(self.proxy_ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def client_ctx(self, pair: tuple[str, str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.tmp / "server-ca.crt"))
        if pair:
            ctx.load_cert_chain(*pair)
        return ctx

    def client_pair(self, ca: CA, cn: str, orgs: tuple[str, ...] = (), ous: tuple[str, ...] = ()) -> tuple[str, str]:
        cert, key = ca.issue(cn, orgs, ous)
        return write_pair(self.tmp, f"{ca.cert.subject.rfc4514_string()}-{cn.replace(':', '_')}", cert, key)

    @asynccontextmanager
    async def serve(self, authenticator: Any) -> AsyncIterator[str]:
        async def handler(request: web.Request) -> web.Response:
            try:
                user = await authenticator.authenticate(request)
            except APIError as exc:
                return web.json_response(exc.status(), status=exc.code)
            if user is None:
                return web.json_response({"user": None}, status=401)
            return web.json_response({"name": user.name, "tenant": user.tenant, "groups": list(user.groups),
                                      "extra": user.extra})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=self.server_ctx()).start()
        try:
            yield f"https://127.0.0.1:{port}/api"
        finally:
            await runner.cleanup()


async def call(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx, headers=headers or {}) as r:
        return r.status, await r.json()


@pytest.fixture
def world(tmp_path: Path) -> TLSWorld:
    return TLSWorld(tmp_path)


# -- X.509 identity rules ----------------------------------------------------------------------


def test_identity_tenant_organization_groups_from_ou() -> None:
    assert identity_from_subject(subject("alice", ("tenant:acme",), ("devs", "ops"))) == (
        "alice", ("devs", "ops"), "acme")


def test_identity_tenant_organization_must_be_alone() -> None:
    with pytest.raises(ValueError, match="must have exactly one O"):
        identity_from_subject(subject("alice", ("tenant:acme", "system:masters")))
    with pytest.raises(ValueError, match="must have exactly one O"):
        identity_from_subject(subject("alice", ("system:masters", "tenant:acme")))


def test_identity_tenant_organization_with_two_tenants_rejected() -> None:
    with pytest.raises(ValueError, match="more than one tenant"):
        identity_from_subject(subject("alice", ("tenant:a:b",)))


def test_identity_from_common_name_groups_from_organization() -> None:
    assert identity_from_subject(subject("system:admin", ("system:masters",))) == (
        "system:admin", ("system:masters",), "system")
    assert identity_from_subject(subject("system:node:n1", ("system:nodes",))) == (
        "system:node:n1", ("system:nodes",), "system")
    assert identity_from_subject(subject("acme:bob", ("a", "b"))) == ("acme:bob", ("a", "b"), "acme")


def test_identity_common_name_without_colon_has_no_tenant() -> None:
    assert identity_from_subject(subject("alice", ("devs",))) == ("alice", ("devs",), "")


def test_identity_requires_common_name() -> None:
    with pytest.raises(ValueError, match="no common name"):
        identity_from_subject(subject("", ("tenant:acme",)))


# -- X.509 authenticator ----------------------------------------------------------------------


def test_x509_rejects_certificate_of_another_ca(tmp_path: Path) -> None:
    ca, other = CA("ca"), CA("other")
    (tmp_path / "ca.crt").write_bytes(ca.pem())
    a = X509Authenticator(tmp_path / "ca.crt")
    good, _ = ca.issue("system:admin", ("system:masters",))
    assert a.authenticate_der(der(good)).name == "system:admin"
    bad, _ = other.issue("system:admin", ("system:masters",))
    with pytest.raises(InvalidCredentials, match="unknown authority"):
        a.authenticate_der(der(bad))


def test_x509_needs_a_ca_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no CA certificate"):
        X509Authenticator(tmp_path / "missing.crt")
    leaf, _ = CA("ca").issue("alice")
    (tmp_path / "leaf.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValueError, match="no CA certificate"):
        X509Authenticator(tmp_path / "leaf.crt")


def test_x509_ca_file_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = CA("old"), CA("new")
    (tmp_path / "ca.crt").write_bytes(old.pem())
    a = X509Authenticator(tmp_path / "ca.crt")
    cert, _ = old.issue("acme:u")
    assert a.authenticate_der(der(cert)).name == "acme:u"
    (tmp_path / "ca.crt").write_bytes(new.pem())
    monkeypatch.setattr(a.bundle._file, "interval", 0.0)
    with pytest.raises(InvalidCredentials, match="unknown authority"):
        a.authenticate_der(der(cert))


def test_x509_expired_not_yet_valid_and_wrong_usage(tmp_path: Path) -> None:
    ca = CA("ca")
    (tmp_path / "ca.crt").write_bytes(ca.pem())
    a = X509Authenticator(tmp_path / "ca.crt")
    expired, _ = ca.issue("acme:u", days=(-3, -1))
    with pytest.raises(InvalidCredentials, match="expired"):
        a.authenticate_der(der(expired))
    future, _ = ca.issue("acme:u", days=(1, 3))
    with pytest.raises(InvalidCredentials, match="not yet valid"):
        a.authenticate_der(der(future))
    server_only, _ = ca.issue("acme:u", eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    with pytest.raises(InvalidCredentials, match="client authentication"):
        a.authenticate_der(der(server_only))
    no_eku, _ = ca.issue("acme:u", eku=None)  # as Go: no EKU extension means any usage
    assert a.authenticate_der(der(no_eku)).tenant == "acme"


def test_x509_cached_identity_still_expires(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = CA("ca")
    (tmp_path / "ca.crt").write_bytes(ca.pem())
    a = X509Authenticator(tmp_path / "ca.crt")
    cert, _ = ca.issue("acme:u", days=(-1, 1))
    first = a.authenticate_der(der(cert))
    assert a.authenticate_der(der(cert)) is first  # served from the cache
    later = authn.time.time() + 3 * 86400
    monkeypatch.setattr(authn.time, "time", lambda: later)
    with pytest.raises(InvalidCredentials, match="expired"):
        a.authenticate_der(der(cert))


def test_x509_rejects_bad_subject(tmp_path: Path) -> None:
    ca = CA("ca")
    (tmp_path / "ca.crt").write_bytes(ca.pem())
    a = X509Authenticator(tmp_path / "ca.crt")
    cert, _ = ca.issue("alice", ("tenant:acme", "other"))
    with pytest.raises(InvalidCredentials, match="must have exactly one O"):
        a.authenticate_der(der(cert))


async def test_x509_over_tls(world: TLSWorld) -> None:
    auth = X509Authenticator(world.client_ca_file)
    async with world.serve(auth) as url:
        status, body = await call(url, world.client_ctx(world.client_pair(world.client_ca, "system:admin",
                                                                          ("system:masters",))))
        assert status == 200
        assert body["name"] == "system:admin" and body["tenant"] == "system"
        assert body["groups"] == ["system:masters", "system:authenticated"]

        status, body = await call(url, world.client_ctx(world.client_pair(world.client_ca, "alice",
                                                                          ("tenant:acme",), ("devs",))))
        assert (status, body["name"], body["tenant"], body["groups"]) == (
            200, "alice", "acme", ["devs", "system:authenticated"])

        # No certificate: nothing presented.
        status, body = await call(url, world.client_ctx())
        assert (status, body) == (401, {"user": None})

        # The server's TLS layer trusts the front-proxy CA too, but the x509 authenticator does not.
        status, body = await call(url, world.client_ctx(world.client_pair(world.proxy_ca, "system:admin",
                                                                          ("system:masters",))))
        assert status == 401 and body["reason"] == "Unauthorized"


# -- token file -------------------------------------------------------------------------------


def test_token_file_columns(tmp_path: Path) -> None:
    f = tmp_path / "tokens.csv"
    f.write_text(
        "t-admin,admin,uid-1,\"system:masters,ops\"\n"
        "t-plain,kubelet,uid-2\n"
        "t-acme,alice,uid-3,\"devs\",,,acme\n"
        "t-short,bob,uid-4,\"devs\",,beta\n"
        "t-seven,carol,uid-5,devs,extra,x,gamma\n"
        "t-broken,mallory,uid-6,devs,,\n"
        "t-two,eve\n"
    )
    a = TokenFileAuthenticator(f)
    assert a.authenticate_token("t-admin") == UserInfo(
        "admin", "system", ("system:masters", "ops", "system:authenticated"), "uid-1")
    assert a.authenticate_token("t-plain") == UserInfo("kubelet", "system", ("system:authenticated",), "uid-2")
    assert a.authenticate_token("t-acme").tenant == "acme"
    assert a.authenticate_token("t-acme").groups == ("devs", "system:authenticated")
    assert a.authenticate_token("t-short").tenant == "beta"
    assert a.authenticate_token("t-seven").tenant == "gamma"
    for bad in ("t-broken", "t-two", "nope", ""):
        with pytest.raises(InvalidCredentials):
            a.authenticate_token(bad)


async def test_token_file_bearer_header(tmp_path: Path) -> None:
    f = tmp_path / "tokens.csv"
    f.write_text("secret-token,alice,u1,,,,acme\n")
    a = TokenFileAuthenticator(f)
    user = await a.authenticate(bearer("secret-token"))
    assert user is not None and (user.name, user.tenant) == ("alice", "acme")
    assert await a.authenticate(req()) is None
    assert await a.authenticate(req({"Authorization": "Basic YTpi"})) is None
    with pytest.raises(InvalidCredentials):
        await a.authenticate(bearer("secret-tokeN"))


async def test_token_file_reload_revokes_and_adds(tmp_path: Path) -> None:
    f = tmp_path / "tokens.csv"
    f.write_text("tok-a,alice,u1,,,,acme\ntok-b,bob,u2,,,,acme\n")
    a = TokenFileAuthenticator(f, check_interval=0.1)
    assert a.authenticate_token("tok-a").name == "alice"
    f.write_text("tok-b,bob,u2,,,,acme\ntok-c,carol,u3\n")  # same second, maybe the same mtime
    await asyncio.sleep(0.15)
    with pytest.raises(InvalidCredentials):
        a.authenticate_token("tok-a")
    assert a.authenticate_token("tok-c").tenant == "system"
    f.unlink()
    await asyncio.sleep(0.15)
    with pytest.raises(InvalidCredentials):  # an unreadable file keeps nothing valid
        a.authenticate_token("tok-b")


async def test_token_file_default_interval_revokes_within_seconds(tmp_path: Path) -> None:
    f = tmp_path / "tokens.csv"
    f.write_text("tok-a,alice,u1\n")
    a = TokenFileAuthenticator(f)
    assert a.authenticate_token("tok-a").name == "alice"
    f.write_text("")
    await asyncio.sleep(1.1)
    with pytest.raises(InvalidCredentials):
        a.authenticate_token("tok-a")


# -- service-account tokens ---------------------------------------------------------------


def pem_private(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


ISSUER = "https://kubernetes.default.svc"


class Objects:
    """A stand-in for the watch cache: (tenant, ns, kind, name) -> object."""

    def __init__(self) -> None:
        self.objs: dict[tuple[str, str, str, str], dict] = {}

    def add_sa(self, tenant: str, ns: str, name: str, uid: str) -> None:
        self.objs[(tenant, ns, "ServiceAccount", name)] = {"metadata": {"name": name, "uid": uid}}

    def add_secret(self, tenant: str, ns: str, name: str, token: str | None = None) -> None:
        obj: dict[str, Any] = {"metadata": {"name": name}}
        if token is not None:
            obj["data"] = {"token": base64.b64encode(token.encode()).decode()}
        self.objs[(tenant, ns, "Secret", name)] = obj

    async def lookup(self, tenant: str, ns: str, kind: str, name: str) -> dict | None:
        return self.objs.get((tenant, ns, kind, name))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def sa_setup(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> tuple[ServiceAccountAuthenticator, Objects, bytes]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "sa.pub").write_bytes(pem_public(rsa_key))
    (tmp_path / "sa-ec.key").write_bytes(pem_private(ec_key))  # a private key file works too
    objs = Objects()
    objs.add_sa("acme", "default", "builder", "sa-uid-1")
    auth = ServiceAccountAuthenticator([tmp_path / "sa.pub", tmp_path / "sa-ec.key"], ISSUER, objs.lookup)
    return auth, objs, pem_private(ec_key)


async def test_sa_token_happy_path_rs256_and_es256(sa_setup, rsa_key) -> None:
    auth, _, ec_pem = sa_setup
    for pem in (pem_private(rsa_key), ec_pem):
        token = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1")
        user = await auth.authenticate(bearer(token))
        assert user == UserInfo(
            "system:serviceaccount:default:builder", "acme",
            ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"), "sa-uid-1")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256" and header["kid"]


async def test_sa_token_wrong_key_and_tampering(sa_setup) -> None:
    auth, _, _ = sa_setup
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = issue_service_account_token(pem_private(stranger), ISSUER, "acme", "default", "builder", "sa-uid-1")
    with pytest.raises(InvalidCredentials, match="signature"):
        await auth.authenticate(bearer(token))
    # Swap the claims for a system-tenant account under the original signature.
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["kubernetes.io/serviceaccount/tenant"] = "system"
    forged = ".".join([head, satoken._b64url_encode(orjson.dumps(claims)), sig])
    with pytest.raises(InvalidCredentials, match="signature"):
        await auth.authenticate(bearer(forged))
    unsigned = ".".join([satoken._b64url_encode(b'{"alg":"none"}'), body, ""])
    with pytest.raises(InvalidCredentials, match="algorithm"):
        await auth.authenticate(bearer(unsigned))
    for junk in ("not-a-jwt", "a.b.c", "a.b"):
        with pytest.raises(InvalidCredentials):
            await auth.authenticate(bearer(junk))


async def test_sa_token_expired_not_yet_valid_and_wrong_issuer(sa_setup, rsa_key) -> None:
    auth, _, _ = sa_setup
    pem = pem_private(rsa_key)
    fresh = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1", expires_in=600)
    assert (await auth.authenticate(bearer(fresh))).tenant == "acme"
    expired = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1", expires_in=-120)
    with pytest.raises(InvalidCredentials, match="expired"):
        await auth.authenticate(bearer(expired))
    other = issue_service_account_token(pem, "https://elsewhere", "acme", "default", "builder", "sa-uid-1")
    with pytest.raises(InvalidCredentials, match="issuer"):
        await auth.authenticate(bearer(other))


def sign_claims(pem: bytes, claims: dict) -> str:
    """A token with arbitrary claims, signed by the real key (to test claim checks alone)."""
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = (satoken._b64url_encode(b'{"alg":"RS256"}') + "." + satoken._b64url_encode(orjson.dumps(claims)))
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + satoken._b64url_encode(sig)


async def test_sa_token_claim_checks(sa_setup, rsa_key) -> None:
    auth, _, _ = sa_setup
    pem = pem_private(rsa_key)
    base = {
        "iss": ISSUER, "sub": "system:serviceaccount:default:builder",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/service-account.name": "builder",
        "kubernetes.io/serviceaccount/service-account.uid": "sa-uid-1",
        "kubernetes.io/serviceaccount/tenant": "acme",
    }
    assert (await auth.authenticate(bearer(sign_claims(pem, base)))).name == "system:serviceaccount:default:builder"
    no_tenant = {k: v for k, v in base.items() if k != "kubernetes.io/serviceaccount/tenant"}
    with pytest.raises(InvalidCredentials, match="no tenant"):
        await auth.authenticate(bearer(sign_claims(pem, no_tenant)))
    with pytest.raises(InvalidCredentials, match="subject"):
        await auth.authenticate(bearer(sign_claims(pem, {**base, "sub": "system:serviceaccount:kube-system:x"})))
    with pytest.raises(InvalidCredentials, match="not valid yet"):
        await auth.authenticate(bearer(sign_claims(pem, {**base, "nbf": authn.time.time() + 3600})))


async def test_sa_token_revocation(sa_setup, rsa_key) -> None:
    auth, objs, _ = sa_setup
    pem = pem_private(rsa_key)
    objs.add_secret("acme", "default", "builder-token-x")
    token = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1",
                                        secret_name="builder-token-x")
    assert (await auth.authenticate(bearer(token))).uid == "sa-uid-1"
    # The secret holds a different token: this one was replaced.
    objs.add_secret("acme", "default", "builder-token-x", token="something-else")
    with pytest.raises(InvalidCredentials, match="does not match"):
        await auth.authenticate(bearer(token))
    objs.add_secret("acme", "default", "builder-token-x", token=token)
    assert (await auth.authenticate(bearer(token))).tenant == "acme"
    # Deleted secret.
    del objs.objs[("acme", "default", "Secret", "builder-token-x")]
    with pytest.raises(InvalidCredentials, match="secret"):
        await auth.authenticate(bearer(token))
    # Recreated service account (new uid).
    plain = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1")
    assert await auth.authenticate(bearer(plain))
    objs.add_sa("acme", "default", "builder", "sa-uid-2")
    with pytest.raises(InvalidCredentials, match="recreated"):
        await auth.authenticate(bearer(plain))
    # Deleted service account.
    del objs.objs[("acme", "default", "ServiceAccount", "builder")]
    with pytest.raises(InvalidCredentials, match="no longer exists"):
        await auth.authenticate(bearer(plain))
    # The same account name in another tenant is another account.
    objs.add_sa("beta", "default", "builder", "sa-uid-1")
    with pytest.raises(InvalidCredentials, match="no longer exists"):
        await auth.authenticate(bearer(plain))


async def test_sa_lookup_failure_fails_closed(tmp_path: Path, rsa_key) -> None:
    (tmp_path / "sa.pub").write_bytes(pem_public(rsa_key))

    async def broken(*_: str) -> dict | None:
        raise RuntimeError("cache not ready")

    auth = ServiceAccountAuthenticator([tmp_path / "sa.pub"], ISSUER, broken)
    token = issue_service_account_token(pem_private(rsa_key), ISSUER, "acme", "default", "builder", "u")
    with pytest.raises(InvalidCredentials, match="cannot look up"):
        await auth.authenticate(bearer(token))


async def test_watch_cache_lookup() -> None:
    sa = {"metadata": {"name": "builder", "uid": "u1", "tenant": "acme", "namespace": "default"}}
    entries = {"/registry/serviceaccounts/acme/default/builder": SimpleNamespace(raw=orjson.dumps(sa))}
    waited = []

    async def wait_consistent() -> None:
        waited.append(True)

    caches = SimpleNamespace(caches={"serviceaccounts": SimpleNamespace(entries=entries),
                                     "secrets": SimpleNamespace(entries={})}, wait_consistent=wait_consistent)
    lookup = watch_cache_lookup(caches)  # type: ignore[arg-type]
    assert await lookup("acme", "default", "ServiceAccount", "builder") == sa
    assert not waited
    assert await lookup("acme", "default", "Secret", "gone") is None
    assert waited == [True]


# -- front proxy ------------------------------------------------------------------------------


async def test_request_header_trusted_and_untrusted(world: TLSWorld) -> None:
    auth = RequestHeaderAuthenticator(world.proxy_ca_file, allowed_names=("front-proxy-client",))
    headers = {"X-Remote-User": "alice", "X-Remote-Group": "devs", "X-Remote-Tenant": "acme",
               "X-Remote-Extra-Scopes%2Fread": "yes"}
    proxy = world.client_ctx(world.client_pair(world.proxy_ca, "front-proxy-client"))
    async with world.serve(auth) as url:
        status, body = await call(url, proxy, headers)
        assert status == 200, body
        assert (body["name"], body["tenant"], body["groups"]) == ("alice", "acme", ["devs", "system:authenticated"])
        assert body["extra"] == {"scopes/read": ["yes"]}

        # Proxy certificate, but no tenant header: rejected rather than guessed.
        status, _ = await call(url, proxy, {"X-Remote-User": "system:admin"})
        assert status == 401

        # No user header: nothing asserted.
        status, body = await call(url, proxy)
        assert (status, body) == (401, {"user": None})

        # A user's client certificate (client CA) may not assert other users.
        user_cert = world.client_ctx(world.client_pair(world.client_ca, "front-proxy-client"))
        status, body = await call(url, user_cert, headers)
        assert status == 401 and body["reason"] == "Unauthorized"

        # A proxy-CA certificate with a name not in the allowed list.
        stranger = world.client_ctx(world.client_pair(world.proxy_ca, "some-other-proxy"))
        status, _ = await call(url, stranger, headers)
        assert status == 401

        # No certificate at all.
        status, _ = await call(url, world.client_ctx(), headers)
        assert status == 401


async def test_union_over_tls_proxy_then_x509(world: TLSWorld) -> None:
    union = UnionAuthenticator([RequestHeaderAuthenticator(world.proxy_ca_file),
                                X509Authenticator(world.client_ca_file)])
    async with world.serve(union) as url:
        proxy = world.client_ctx(world.client_pair(world.proxy_ca, "front-proxy-client"))
        status, body = await call(url, proxy, {"X-Remote-User": "bob", "X-Remote-Tenant": "beta"})
        assert (status, body["name"], body["tenant"]) == (200, "bob", "beta")
        # A client certificate user sending X-Remote-User is still just itself.
        user = world.client_ctx(world.client_pair(world.client_ca, "acme:carol"))
        status, body = await call(url, user, {"X-Remote-User": "system:admin", "X-Remote-Tenant": "system"})
        assert (status, body["name"], body["tenant"]) == (200, "acme:carol", "acme")


# -- union -------------------------------------------------------------------------------------


class Fixed:
    def __init__(self, result: UserInfo | Exception | None) -> None:
        self.result = result
        self.calls = 0

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_union_first_success_wins_and_adds_authenticated() -> None:
    a, b = Fixed(None), Fixed(UserInfo("bob", "acme", ("devs",)))
    c = Fixed(UserInfo("carol", "acme"))
    user = await UnionAuthenticator([a, b, c]).authenticate(req())
    assert user == UserInfo("bob", "acme", ("devs", "system:authenticated"))
    assert (a.calls, b.calls, c.calls) == (1, 1, 0)


async def test_union_error_then_success_is_success() -> None:
    union = UnionAuthenticator([Fixed(InvalidCredentials("bad cert")), Fixed(UserInfo("bob", "acme"))])
    assert (await union.authenticate(req())).name == "bob"


async def test_union_invalid_credentials_never_become_anonymous(tmp_path: Path) -> None:
    f = tmp_path / "tokens.csv"
    f.write_text("good,alice,u1,,,,acme\n")
    union = UnionAuthenticator([TokenFileAuthenticator(f)], anonymous=True)
    assert (await union.authenticate(bearer("good"))).tenant == "acme"
    with pytest.raises(APIError) as exc:
        await union.authenticate(bearer("bad"))
    assert (exc.value.code, exc.value.reason, exc.value.message) == (401, "Unauthorized", "Unauthorized")
    # An internal failure of one authenticator is a 401 too, not a 500 and not anonymous.
    with pytest.raises(APIError):
        await UnionAuthenticator([Fixed(RuntimeError("boom"))], anonymous=True).authenticate(req())


async def test_union_unrecognised_bearer_token_is_401() -> None:
    with pytest.raises(APIError) as exc:
        await UnionAuthenticator([Fixed(None)], anonymous=True).authenticate(bearer("whatever"))
    assert exc.value.code == 401


async def test_union_anonymous_on_and_off() -> None:
    assert await UnionAuthenticator([Fixed(None)], anonymous=True).authenticate(req()) == ANONYMOUS
    assert UserInfo("system:anonymous", "", ("system:unauthenticated",)) == ANONYMOUS
    assert await UnionAuthenticator([Fixed(None)], anonymous=False).authenticate(req()) is None


async def test_union_token_file_then_service_accounts(tmp_path: Path, rsa_key) -> None:
    f = tmp_path / "tokens.csv"
    f.write_text("static,admin,u0,system:masters\n")
    (tmp_path / "sa.pub").write_bytes(pem_public(rsa_key))
    objs = Objects()
    objs.add_sa("acme", "ns1", "app", "u1")
    union = UnionAuthenticator([TokenFileAuthenticator(f),
                                ServiceAccountAuthenticator([tmp_path / "sa.pub"], ISSUER, objs.lookup)])
    assert (await union.authenticate(bearer("static"))).groups == ("system:masters", "system:authenticated")
    token = issue_service_account_token(pem_private(rsa_key), ISSUER, "acme", "ns1", "app", "u1")
    user = await union.authenticate(bearer(token))
    assert (user.name, user.tenant) == ("system:serviceaccount:ns1:app", "acme")
    assert user.groups.count("system:authenticated") == 1


async def test_bound_token_audiences_and_pod(sa_setup, rsa_key) -> None:
    """TokenRequest's tokens: good only for their audiences and only while their pod (same uid) exists."""
    auth, objs, _ = sa_setup
    pem = pem_private(rsa_key)
    objs.objs[("acme", "default", "Pod", "web-1")] = {"metadata": {"name": "web-1", "uid": "pod-uid-1"}}
    token = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1", expires_in=3600,
                                        audiences=[ISSUER], pod=("web-1", "pod-uid-1"))
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["kubernetes.io"] == {"namespace": "default", "serviceaccount": {"name": "builder", "uid": "sa-uid-1"},
                                       "pod": {"name": "web-1", "uid": "pod-uid-1"}}
    assert claims["aud"] == [ISSUER] and claims["nbf"] == claims["iat"] and claims["exp"] == claims["iat"] + 3600
    user = await auth.authenticate(bearer(token))
    assert user.name == "system:serviceaccount:default:builder" and user.tenant == "acme"
    assert user.extra == {"authentication.kubernetes.io/pod-name": ["web-1"],
                          "authentication.kubernetes.io/pod-uid": ["pod-uid-1"]}
    vault = issue_service_account_token(pem, ISSUER, "acme", "default", "builder", "sa-uid-1", expires_in=3600,
                                        audiences=["vault"], pod=("web-1", "pod-uid-1"))
    with pytest.raises(InvalidCredentials, match="audiences"):
        await auth.authenticate(bearer(vault))
    assert (await auth.authenticate_token(vault, ["vault"])).tenant == "acme"
    objs.objs[("acme", "default", "Pod", "web-1")] = {"metadata": {"name": "web-1", "uid": "pod-uid-2"}}
    with pytest.raises(InvalidCredentials, match="bound to no longer exists"):
        await auth.authenticate(bearer(token))
    del objs.objs[("acme", "default", "Pod", "web-1")]
    with pytest.raises(InvalidCredentials, match="bound to no longer exists"):
        await auth.authenticate(bearer(token))
