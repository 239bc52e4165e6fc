"""Tenant-aware authentication: client certificates, static tokens, service-account JWTs, a front proxy.

Every authenticator answers one of three ways, and the difference matters:

* a `UserInfo` -- the request carries a credential and it is good;
* `None` -- the request carries no credential this authenticator understands;
* `InvalidCredentials` (a 401 `APIError`) -- it carries one and it is bad.

`UnionAuthenticator` asks each in turn, takes the first user, and only falls
back to the anonymous user when *nothing* was presented: a revoked token or a
bad signature must never quietly become `system:anonymous` (Kubernetes keeps
the same rule with its fail-on-error union in front of the anonymous
authenticator).

Each user carries a tenant, as Arktos defines it (ARKTOS.md section 2):

* X.509: an Organization `tenant:<t>` puts the user in tenant `t` with groups
  from the OrganizationalUnits (and then it must be the only Organization);
  otherwise the tenant is the part of the CommonName before the first `:`
  (`system:admin` -> `system`, `alice` -> no tenant) and groups come from O.
* static token file: `token,user,uid,"g1,g2",<extra>,,<tenant>`; no tenant
  column means tenant `system`.
* service-account JWTs carry `kubernetes.io/serviceaccount/tenant`; a token
  without it is rejected.
* the front proxy passes `X-Remote-Tenant`; a proxied user without it is
  rejected (a proxy that forgets the tenant must not land its users in
  whatever tenant their name happens to suggest).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import unquote

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from arktos.api.errors import APIError
from arktos.api.satoken import (
    CLAIM_KUBERNETES,
    CLAIM_NAMESPACE,
    CLAIM_SA_NAME,
    CLAIM_SA_UID,
    CLAIM_SECRET_NAME,
    CLAIM_TENANT,
    SA_USER_PREFIX,
    PublicKey,
    b64url_decode,
    key_id,
    load_public_keys,
    verify_jws,
)
from arktos.api.tenancy import SYSTEM_TENANT, identity_from_names
from arktos.apiserver.auth import UserInfo
from arktos.storage.keys import object_key

if TYPE_CHECKING:
    from arktos.apiserver.cache import CacheManager

log = logging.getLogger(__name__)

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
SERVICE_ACCOUNTS = "system:serviceaccounts"
ANONYMOUS = UserInfo(ANONYMOUS_USER, "", (UNAUTHENTICATED,))


FILE_CHECK_INTERVAL = 1.0  # seconds between stat() calls on a watched file
IDENTITY_CACHE_SIZE = 4096
MAX_TOKEN_BYTES = 64 * 1024

# `(tenant, namespace, kind, name) -> object | None`, kind being "ServiceAccount" or "Secret".
Lookup = Callable[[str, str, str, str], Awaitable[dict[str, Any] | None]]


class InvalidCredentials(APIError):
    """A credential was presented and is not good: a 401, never a fall-through to anonymous.

    The client sees only "Unauthorized", as from Kubernetes: telling a caller
    *why* its token failed helps an attacker more than an operator, who has
    the reason in the server log.
    """

    def __init__(self, why: str) -> None:
        super().__init__(401, "Unauthorized", "Unauthorized")
        self.why = why

    def __str__(self) -> str:
        return self.why


def _unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


# -- small shared pieces ------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class _WatchedFile:
    """Tells whether a file changed, looking at most once per `interval` seconds.

    Credentials files are edited in place by operators; re-reading them on
    change is what makes "delete the line" revoke a token without a restart.
    A file rewritten twice within one mtime tick keeps its mtime, so while the
    mtime is recent the content digest decides instead.
    """

    def __init__(self, path: str | os.PathLike[str], interval: float = FILE_CHECK_INTERVAL) -> None:
        self.path = os.fspath(path)
        self.interval = interval
        self._checked = 0.0
        self._stat: tuple[int, int, int, int] | None = None
        self._digest = b""

    def poll(self, force: bool = False) -> bytes | None:
        """The file's new content if it changed since the last poll, else None.

        A missing or unreadable file reads as empty content: credentials that
        cannot be read must not stay valid.
        """
        now = time.monotonic()
        if not force and now - self._checked < self.interval:
            return None
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            stat = None
        else:
            stat = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        recent = stat is not None and time.time() - stat[0] / 1e9 < 2 * max(self.interval, 1.0)
        if not force and stat == self._stat and stat is not None and not recent:
            return None
        self._stat = stat
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            if self._digest != b"missing":
                log.warning("cannot read %s: %s; treating it as empty", self.path, exc)
            data, digest = b"", b"missing"
        else:
            digest = hashlib.sha256(data).digest()
        if not force and digest == self._digest:
            return None
        self._digest = digest
        return data


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def peer_certificate(request: web.Request) -> bytes | None:
    """DER of the TLS client certificate, if the connection is TLS and the client sent one.

    The ssl layer has checked it against the server's trust store, but that
    store may hold several CAs (client CA and front-proxy CA), so each
    authenticator verifies the issuer it trusts itself.
    """
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    try:
        return ssl_object.getpeercert(binary_form=True) or None
    except ValueError:  # handshake not complete
        return None


def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups or user.name == ANONYMOUS_USER:
        return user
    return UserInfo(user.name, user.tenant, (*user.groups, AUTHENTICATED), user.uid, user.extra)


# -- X.509 ---------------------------------------------------------------------


def _load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN" not in data:
        return []
    return x509.load_pem_x509_certificates(data)


def _allows_client_auth(cert: x509.Certificate) -> bool:
    """Go's rule: no EKU extension means any use; otherwise clientAuth (or any) must be listed."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What one certificate verified to, kept so the next request skips the crypto."""

    not_before: float  # the tighter of leaf and issuer validity
    not_after: float
    user: UserInfo | None
    error: str = ""


class CABundle:
    """The CAs in a PEM file, reloaded when the file changes.

    Trust anchors are every certificate in the file, as with Go's CertPool: a
    client certificate must be issued directly by one of them (put
    intermediates into the file; Python 3.11 does not expose the chain the
    client sent).  `generation` grows on each reload so caches of verified
    certificates know to forget.
    """

    def __init__(self, path: str | os.PathLike[str], interval: float = FILE_CHECK_INTERVAL) -> None:
        self._file = _WatchedFile(path, interval)
        self.cas: list[x509.Certificate] = []
        self.generation = 0
        self._load(self._file.poll(force=True) or b"")
        if not self.cas:
            # A wrong path at start-up is an operator error to report, not a server that
            # quietly turns every client away.  (Later bad reloads do trust no one.)
            raise ValueError(f"no CA certificate in {self._file.path}")

    def _load(self, data: bytes) -> None:
        try:
            cas = _load_pem_certificates(data)
        except ValueError as exc:
            log.warning("cannot parse CA file %s: %s; trusting no one from it", self._file.path, exc)
            cas = []
        self.cas = [c for c in cas if _is_ca(c)]
        if len(self.cas) != len(cas):
            log.warning("%s: ignoring %d certificate(s) that are not CAs", self._file.path, len(cas) - len(self.cas))
        self.generation += 1

    def refresh(self) -> None:
        data = self._file.poll()
        if data is not None:
            self._load(data)

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The CA of this bundle whose signature is on `cert`, or None."""
        for ca in self.cas:
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def verify(self, cert: x509.Certificate) -> tuple[float, float, str]:
        """`(not_before, not_after, error)` of the chain `cert` -> CA; error "" when it verifies.

        Times are returned rather than checked so callers can cache the
        signature check and still test validity on every request.
        """
        nb = cert.not_valid_before_utc.timestamp()
        na = cert.not_valid_after_utc.timestamp()
        ca = self.issuer_of(cert)
        if ca is None:
            return nb, na, "certificate signed by unknown authority"
        if not _allows_client_auth(cert) or not _allows_client_auth(ca):
            return nb, na, "certificate is not valid for client authentication"
        nb = max(nb, ca.not_valid_before_utc.timestamp())
        na = min(na, ca.not_valid_after_utc.timestamp())
        return nb, na, ""


def identity_from_subject(subject: x509.Name) -> tuple[str, tuple[str, ...], str]:
    """`(user, groups, tenant)` of a certificate subject, by Arktos's rule.

    Raises ValueError for a subject Arktos refuses: no CommonName, a
    `tenant:` Organization next to other Organizations, or `tenant:a:b`.
    """
    return identity_from_names(
        [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)],
        [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)],
        [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)],
    )


class VerifiedCertificates:
    """Certificates checked against one CA bundle, each verdict cached by DER digest.

    Both certificate-reading authenticators need this (client certificates, and
    the front proxy's): the signature check and `judge` (what the caller derives
    from a valid certificate) run once per distinct certificate; the validity
    window is checked on every call, because a cached certificate can expire
    while its connections live.  The cache empties when the CA file changes.
    """

    def __init__(self, ca_file: str | os.PathLike[str], what: str, cache_size: int,
                 judge: Callable[[x509.Certificate, float, float], _Verdict]) -> None:
        self.bundle = CABundle(ca_file)
        self.what = what
        self.judge = judge
        self._cache: _LRU[bytes, _Verdict] = _LRU(cache_size)
        self._generation = self.bundle.generation

    def check(self, der: bytes) -> _Verdict:
        """The verdict for a certificate that is valid now; InvalidCredentials otherwise."""
        self.bundle.refresh()
        if self.bundle.generation != self._generation:
            self._cache.clear()
            self._generation = self.bundle.generation
        digest = hashlib.sha256(der).digest()
        verdict = self._cache.get(digest)
        if verdict is None:
            verdict = self._verify(der)
            self._cache.put(digest, verdict)
        if verdict.error:
            raise InvalidCredentials(f"{self.what}: {verdict.error}")
        now = time.time()
        if now < verdict.not_before:
            raise InvalidCredentials(f"{self.what}: certificate is not yet valid")
        if now > verdict.not_after:
            raise InvalidCredentials(f"{self.what}: certificate has expired")
        return verdict

    def _verify(self, der: bytes) -> _Verdict:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            return _Verdict(0, 0, None, f"cannot parse certificate: {exc}")
        nb, na, error = self.bundle.verify(cert)
        if error:
            return _Verdict(nb, na, None, error)
        return self.judge(cert, nb, na)


class X509Authenticator:
    """Users from TLS client certificates issued by the client CA.

    The signature check and subject parsing run once per distinct certificate
    (an LRU keyed by the DER digest); validity times are checked on every
    request because a cached certificate can expire while connections live.
    """

    def __init__(self, client_ca_file: str | os.PathLike[str], cache_size: int = IDENTITY_CACHE_SIZE) -> None:
        self.certs = VerifiedCertificates(client_ca_file, "x509", cache_size, self._identity)
        self.bundle = self.certs.bundle

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        der = peer_certificate(request)
        if der is None:
            return None
        return self.authenticate_der(der)

    def authenticate_der(self, der: bytes) -> UserInfo:
        verdict = self.certs.check(der)
        assert verdict.user is not None
        return verdict.user

    @staticmethod
    def _identity(cert: x509.Certificate, nb: float, na: float) -> _Verdict:
        try:
            name, groups, tenant = identity_from_subject(cert.subject)
        except ValueError as exc:
            return _Verdict(nb, na, None, str(exc))
        return _Verdict(nb, na, _with_authenticated(UserInfo(name, tenant, groups)))


# -- static token file -----------------------------------------------------------


def parse_token_file(text: str, source: str = "token file") -> dict[bytes, UserInfo]:
    """SHA-256(token) -> user for each good row of a Kubernetes/Arktos static token CSV.

    Rows are `token,user,uid[,"g1,g2"[,<extra>,,<tenant>]]`.  The tenant is
    the 7th column, or (Arktos's reading) a last column that follows an empty
    one; without either the tenant is `system`.  A row is skipped, not the
    whole file, when it is malformed -- and a row that ends in two empty
    columns (a tenant was meant but left out) is skipped rather than given
    the system tenant.
    """
    import csv

    tokens: dict[bytes, UserInfo] = {}
    for num, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            log.warning("%s row %d: need at least token, user name and uid; skipped", source, num)
            continue
        tenant = SYSTEM_TENANT
        if len(row) > 4:
            if row[-1] == "" and row[-2] == "":
                log.warning("%s row %d: a tenant column is expected but empty; skipped", source, num)
                continue
            if row[-2] == "" and row[-1]:
                tenant = row[-1]
            elif len(row) >= 7 and row[6]:
                tenant = row[6]
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        digest = hashlib.sha256(row[0].encode()).digest()
        if digest in tokens:
            log.warning("%s row %d: duplicate token; the later row wins", source, num)
        tokens[digest] = _with_authenticated(UserInfo(row[1], tenant.strip(), groups, row[2]))
    return tokens


class TokenFileAuthenticator:
    """Bearer tokens from a static CSV file, re-read when it changes.

    Tokens are held only as SHA-256 digests: the dictionary lookup then
    compares digests, whose timing says nothing useful about the token, and
    a memory dump does not give tokens away.
    """

    def __init__(self, path: str | os.PathLike[str], check_interval: float = FILE_CHECK_INTERVAL) -> None:
        self._file = _WatchedFile(path, check_interval)
        self._tokens: dict[bytes, UserInfo] = {}
        self._reload(self._file.poll(force=True) or b"")

    def _reload(self, data: bytes) -> None:
        self._tokens = parse_token_file(data.decode("utf-8", "replace"), self._file.path)
        log.info("loaded %d token(s) from %s", len(self._tokens), self._file.path)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request)
        if token is None:
            return None
        return self.authenticate_token(token)

    def authenticate_token(self, token: str) -> UserInfo:
        data = self._file.poll()
        if data is not None:
            self._reload(data)
        digest = hashlib.sha256(token.encode()).digest()
        user = self._tokens.get(digest)
        if user is None:
            raise InvalidCredentials("token not in the token file")
        return user


# -- service-account JWTs ------------------------------------------------------------

class ServiceAccountAuthenticator:
    """Service-account JWTs: signature, issuer, time window, tenant, and a live ServiceAccount.

    Verified claims are cached by token digest (the signature check is the
    expensive part); the time window and the revocation lookup run on every
    request, so deleting the ServiceAccount or its token Secret, or
    recreating the account under a new uid, revokes the token at once.
    """

    def __init__(
        self,
        public_key_files: Iterable[str | os.PathLike[str]],
        issuer: str | Sequence[str],
        lookup: Lookup | None,
        leeway: float = 60.0,
        cache_size: int = IDENTITY_CACHE_SIZE,
        api_audiences: Sequence[str] = (),
    ) -> None:
        self.issuers = frozenset([issuer] if isinstance(issuer, str) else issuer)
        # What a bound token's `aud` must name one of (kube-apiserver's --api-audiences: the issuer).
        self.api_audiences = tuple(api_audiences) or tuple(sorted(self.issuers))
        self.lookup = lookup
        self.leeway = leeway
        self.keys: list[tuple[str, PublicKey]] = []
        for path in public_key_files:
            with open(path, "rb") as f:
                found = load_public_keys(f.read())
            if not found:
                raise ValueError(f"no RSA or EC P-256 key in {os.fspath(path)}")
            self.keys.extend((key_id(k), k) for k in found)
        self._cache: _LRU[bytes, dict[str, Any]] = _LRU(cache_size)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request)
        if token is None:
            return None
        return await self.authenticate_token(token)

    def _claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidCredentials("not a JWT")
        digest = hashlib.sha256(token.encode()).digest()
        claims = self._cache.get(digest)
        if claims is not None:
            return claims
        head_b64, body_b64, sig_b64 = token.split(".")
        try:
            header = orjson.loads(b64url_decode(head_b64))
            signature = b64url_decode(sig_b64)
        except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise InvalidCredentials(f"malformed JWT: {exc}") from None
        if not isinstance(header, dict):
            raise InvalidCredentials("malformed JWT header")
        alg = header.get("alg")
        if alg not in ("RS256", "ES256"):
            raise InvalidCredentials(f"JWT algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        candidates = [k for i, k in self.keys if i == kid] or [k for _, k in self.keys]
        signing_input = f"{head_b64}.{body_b64}".encode("ascii")
        if not any(verify_jws(alg, k, signing_input, signature) for k in candidates):
            raise InvalidCredentials("JWT signature does not verify with any service-account key")
        try:
            claims = orjson.loads(b64url_decode(body_b64))
        except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise InvalidCredentials(f"malformed JWT claims: {exc}") from None
        if not isinstance(claims, dict):
            raise InvalidCredentials("malformed JWT claims")
        self._cache.put(digest, claims)
        return claims

    async def authenticate_token(self, token: str, audiences: Sequence[str] | None = None) -> UserInfo:
        claims = self._claims(token)
        if claims.get("iss") not in self.issuers:
            raise InvalidCredentials(f"JWT issuer {claims.get('iss')!r} is not trusted")
        aud = claims.get("aud")
        if aud is not None:  # a bound token (TokenRequest) is good only for the audiences it names
            names = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not set(names) & set(audiences or self.api_audiences):
                raise InvalidCredentials("token audiences are invalid for the target audiences")
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if exp is not None and (not isinstance(exp, int | float) or now - self.leeway > exp):
            raise InvalidCredentials("service-account token has expired")
        if nbf is not None and (not isinstance(nbf, int | float) or now + self.leeway < nbf):
            raise InvalidCredentials("service-account token is not valid yet")
        namespace, name = claims.get(CLAIM_NAMESPACE), claims.get(CLAIM_SA_NAME)
        uid, tenant = claims.get(CLAIM_SA_UID), claims.get(CLAIM_TENANT)
        secret = claims.get(CLAIM_SECRET_NAME)
        if not isinstance(tenant, str) or not tenant:
            raise InvalidCredentials("service-account token carries no tenant")
        if not all(isinstance(v, str) and v for v in (namespace, name, uid)):
            raise InvalidCredentials("service-account token lacks namespace, name or uid")
        if secret is not None and not isinstance(secret, str):
            raise InvalidCredentials("service-account token has a malformed secret name")
        assert isinstance(namespace, str) and isinstance(name, str) and isinstance(uid, str)
        user_name = f"{SA_USER_PREFIX}{namespace}:{name}"
        if claims.get("sub") != user_name:
            raise InvalidCredentials("service-account token subject does not match its claims")
        pod = (claims.get(CLAIM_KUBERNETES) or {}).get("pod") if isinstance(claims.get(CLAIM_KUBERNETES),
                                                                             dict) else None
        if pod is not None and not (isinstance(pod, dict) and pod.get("name") and pod.get("uid")):
            raise InvalidCredentials("service-account token has a malformed pod binding")
        if self.lookup is not None:
            await self._check_live(token, tenant, namespace, name, uid, secret)
            if pod is not None:
                await self._check_pod(tenant, namespace, pod["name"], pod["uid"])
        groups = (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED)
        extra = {"authentication.kubernetes.io/pod-name": [pod["name"]],
                 "authentication.kubernetes.io/pod-uid": [pod["uid"]]} if pod is not None else {}
        return UserInfo(user_name, tenant, groups, uid, extra)

    async def _check_pod(self, tenant: str, namespace: str, name: str, uid: str) -> None:
        """A token bound to a pod dies with the pod (or with a new pod of the same name)."""
        assert self.lookup is not None
        try:
            pod = await self.lookup(tenant, namespace, "Pod", name)
        except Exception as exc:
            raise InvalidCredentials(f"cannot look up pod {tenant}/{namespace}/{name}: {exc}") from None
        if pod is None or (pod.get("metadata") or {}).get("uid") != uid:
            raise InvalidCredentials(f"pod {tenant}/{namespace}/{name} ({uid}) the token is bound to no longer exists")

    async def _check_live(self, token: str, tenant: str, namespace: str, name: str, uid: str,
                          secret: str | None) -> None:
        """Reject tokens whose ServiceAccount (or token Secret) is gone, going, or replaced."""
        assert self.lookup is not None
        where = f"{tenant}/{namespace}/{name}"
        try:
            sa = await self.lookup(tenant, namespace, "ServiceAccount", name)
            sec = await self.lookup(tenant, namespace, "Secret", secret) if secret else None
        except Exception as exc:
            # Fail closed: a token we cannot check is not a token we accept.
            raise InvalidCredentials(f"cannot look up service account {where}: {exc}") from None
        meta = (sa or {}).get("metadata") or {}
        if sa is None or meta.get("deletionTimestamp"):
            raise InvalidCredentials(f"service account {where} no longer exists")
        if meta.get("uid") != uid:
            raise InvalidCredentials(f"service account {where} was recreated (uid {meta.get('uid')} != {uid})")
        if not secret:
            return
        if sec is None or ((sec.get("metadata") or {}).get("deletionTimestamp")):
            raise InvalidCredentials(f"token secret {tenant}/{namespace}/{secret} no longer exists")
        stored = (sec.get("data") or {}).get("token")
        if stored:
            try:
                stored_token = base64.b64decode(stored)
            except (binascii.Error, ValueError):
                stored_token = b""
            if not hmac.compare_digest(stored_token, token.encode()):
                raise InvalidCredentials(f"token does not match the one in secret {tenant}/{namespace}/{secret}")


def watch_cache_lookup(caches: CacheManager) -> Lookup:
    """A `Lookup` for `ServiceAccountAuthenticator` over the API server's watch cache.

    A miss waits for the cache to catch up with etcd once before answering
    None, so a token minted right after its ServiceAccount was created is not
    turned away by a cache a few milliseconds behind.
    """
    resources = {"ServiceAccount": "serviceaccounts", "Secret": "secrets", "Pod": "pods"}

    async def lookup(tenant: str, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        resource = resources[kind]
        cache = caches.caches.get(resource)
        if cache is None:
            raise LookupError(f"no watch cache for {resource}")
        key = object_key(resource, tenant, namespace, name)
        entry = cache.entries.get(key)
        if entry is None:
            await caches.wait_consistent()
            entry = cache.entries.get(key)
        return None if entry is None else orjson.loads(entry.raw)

    return lookup


# -- front proxy ------------------------------------------------------------------


class RequestHeaderAuthenticator:
    """Users asserted in headers by an authenticating front proxy.

    Headers are believed only from a connection whose client certificate
    was issued by the *request-header* CA (not the client CA: a user's client
    certificate must not be able to assert other users) and, when
    `allowed_names` is given, whose CommonName is one of them.  The server's
    TLS context has to trust both CAs for such a certificate to arrive here.

    No username header means nothing is asserted (None).  A username header
    on a connection without a trusted proxy certificate is a 401.  The tenant
    header is required: a proxied user without one is rejected; an empty
    value means a user of no tenant.
    """

    def __init__(
        self,
        client_ca_file: str | os.PathLike[str],
        allowed_names: Iterable[str] = (),
        username_headers: Sequence[str] = ("X-Remote-User",),
        group_headers: Sequence[str] = ("X-Remote-Group",),
        extra_prefixes: Sequence[str] = ("X-Remote-Extra-",),
        tenant_header: str = "X-Remote-Tenant",
        cache_size: int = 256,
    ) -> None:
        self.allowed_names = frozenset(allowed_names)
        self.certs = VerifiedCertificates(client_ca_file, "front proxy", cache_size, self._allowed)
        self.bundle = self.certs.bundle
        self.username_headers = tuple(username_headers)
        self.group_headers = tuple(group_headers)
        self.extra_prefixes = tuple(p.lower() for p in extra_prefixes)
        self.tenant_header = tenant_header

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        headers = request.headers
        name = next((v for h in self.username_headers for v in headers.getall(h, ()) if v), "")
        if not name:
            return None
        der = peer_certificate(request)
        if der is None:
            raise InvalidCredentials("request-header user without a front-proxy client certificate")
        self._check_proxy(der)
        if self.tenant_header not in headers:
            raise InvalidCredentials(f"front proxy asserted user {name!r} without {self.tenant_header}")
        tenant = headers[self.tenant_header].strip()
        groups = tuple(v for h in self.group_headers for v in headers.getall(h, ()) if v)
        extra: dict[str, list[str]] = {}
        for header, value in headers.items():
            lower = header.lower()
            for prefix in self.extra_prefixes:
                if lower.startswith(prefix) and len(lower) > len(prefix):
                    extra.setdefault(unquote(lower[len(prefix):]), []).append(value)
                    break
        return _with_authenticated(UserInfo(name, tenant, groups, "", extra))

    def _check_proxy(self, der: bytes) -> None:
        self.certs.check(der)

    def _allowed(self, cert: x509.Certificate, nb: float, na: float) -> _Verdict:
        if self.allowed_names:
            cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if not cns or cns[-1] not in self.allowed_names:
                return _Verdict(nb, na, None, f"subject CN {cns[-1] if cns else ''!r} is not an allowed proxy")
        return _Verdict(nb, na, None)


# -- union ---------------------------------------------------------------------------


class UnionAuthenticator:
    """The first authenticator that recognises the request decides who it is.

    Order them as Kubernetes does: front proxy, client certificate, token
    file, service accounts.  A credential that some authenticator rejected
    and none accepted is a 401 even with anonymous access on; so is a bearer
    token that no authenticator recognised at all.  Only a request with no
    credentials becomes `system:anonymous` (tenant "", group
    `system:unauthenticated`), and only when `anonymous` is enabled.
    """

    def __init__(self, authenticators: Sequence[Any], anonymous: bool = False) -> None:
        self.authenticators = list(authenticators)
        self.anonymous = anonymous

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        failures: list[str] = []
        for auth in self.authenticators:
            try:
                user = await auth.authenticate(request)
            except InvalidCredentials as exc:
                failures.append(exc.why)
                continue
            except APIError as exc:
                if exc.code != 401:
                    raise
                failures.append(exc.message)
                continue
            except Exception:
                log.exception("authenticator %s failed", type(auth).__name__)
                failures.append(f"{type(auth).__name__} failed")
                continue
            if user is not None:
                return _with_authenticated(user)
        if failures:
            log.debug("unauthorized %s %s: %s", request.method, request.path, "; ".join(failures))
            raise _unauthorized()
        if bearer_token(request) is not None:
            raise _unauthorized()
        return ANONYMOUS if self.anonymous else None
