"""The cluster's certificates: certificate authorities, serving and client pairs, the
service-account signing key, and the mapping from a client certificate to an Arktos identity.

Why this module exists: Arktos ran partition-to-partition traffic over plain HTTP; we run TLS
with client certificates everywhere (ARKTOS.md section 2, "Beyond"), so every component needs a
serving or client pair from one cluster CA, made the same way by `arktos up`, by the Ansible
`certs` role and by the tests.

Layout of a `ClusterPKI` directory (kubeadm's names, so operators find what they expect)::

    ca.crt ca.key                      cluster CA: signs serving and client certificates
    apiserver.crt apiserver.key        API server serving pair (SANs = the server names)
    apiserver-kubelet-client.crt/.key  API server -> node agent client (O system:masters)
    front-proxy-ca.crt/.key            separate CA for the aggregation front proxy
    front-proxy-client.crt/.key        the front proxy's client pair, signed by front-proxy-ca
    sa.key sa.pub                      service-account token signing key pair
    admin.crt admin.key                CN system:admin, O system:masters
    clients/<name>.crt/.key            on-demand component clients (system:kube-scheduler, ...)
    clients/tenants/<t>/<user>.crt     on-demand tenant users (O tenant:<t>, OU = groups)
    nodes/<node>-serving.crt/.key      a node agent's logs/exec endpoint (SANs: node name, its IPs)

Private keys are created 0600 (never widened then narrowed), certificates and sa.pub 0644, the
directories 0700.  Every file is written to a temporary name and renamed into place, so a reader
never sees half a PEM, and a lock file serialises concurrent `ensure`/`client` calls from
components that start together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import ipaddress
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from arktos.api.tenancy import TENANT_ORG_PREFIX, identity_from_names

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: Backdating of not-before, so a freshly issued certificate is already valid on a peer whose
#: clock runs a little behind ours.
CLOCK_SKEW = dt.timedelta(minutes=5)

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700

SYSTEM_TENANT = "system"
SYSTEM_ADMIN = "system:admin"
SYSTEM_MASTERS = "system:masters"
SYSTEM_NODES = "system:nodes"
KUBE_SCHEDULER = "system:kube-scheduler"
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
KUBE_PROXY = "system:kube-proxy"
KUBE_DNS = "system:kube-dns"
FRONT_PROXY_CLIENT = "front-proxy-client"
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"

#: Names every API server serving certificate carries besides the caller's: loopback for local
#: clients and the in-cluster service names that pods (and the official client) connect to.
DEFAULT_APISERVER_NAMES: tuple[str, ...] = (
    "localhost",
    "127.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


class PKIError(RuntimeError):
    """The directory holds something we must not silently replace (e.g. a CA cert without its key)."""


class CertIdentity(NamedTuple):
    """Who a client certificate says it is; unpacks as (user, groups, tenant)."""

    user: str
    groups: tuple[str, ...]
    tenant: str


class ClientSubject(NamedTuple):
    """Subject fields of a client certificate; `ca.issue_client(*subject)` issues it."""

    common_name: str
    organizations: tuple[str, ...]
    organizational_units: tuple[str, ...]


class CertPair(NamedTuple):
    """Paths of a certificate and its private key on disk."""

    cert: Path
    key: Path


# --------------------------------------------------------------------------------------------
# Arktos identities (ARKTOS.md section 2)
# --------------------------------------------------------------------------------------------


def tenant_user_subject(tenant: str, user: str, groups: Iterable[str] = ()) -> ClientSubject:
    """Subject for a user of `tenant`: O `tenant:<t>` names the tenant, the groups go to OU.

    This is Arktos's "new format": it lets a user name without a `<tenant>:` prefix (plain
    `alice`) belong to a tenant, and keeps O free of groups so the tenant is unambiguous.
    """
    if not tenant or ":" in tenant:
        raise ValueError(f"invalid tenant name {tenant!r}")
    if not user:
        raise ValueError("user name must not be empty")
    return ClientSubject(user, (TENANT_ORG_PREFIX + tenant,), tuple(groups))


def system_subject(user: str, groups: Iterable[str] = ()) -> ClientSubject:
    """Subject for a system identity in the usual Kubernetes form: CN `system:...`, groups as O.

    The tenant then comes from the CN's prefix, so we insist on `system:` here: a CN without it
    would silently land the identity in another tenant (or none).
    """
    if not user.startswith(SYSTEM_TENANT + ":"):
        raise ValueError(f"system identity {user!r} must start with 'system:'")
    groups = tuple(groups)
    if any(g.startswith(TENANT_ORG_PREFIX) for g in groups):
        raise ValueError("a system identity's groups must not look like a tenant organization")
    return ClientSubject(user, groups, ())


def identity_from_subject(subject: x509.Name) -> CertIdentity:
    """Apply ARKTOS.md's rules to a subject.

    - An Organization starting with `tenant:` names the tenant (the rest of it); groups come
      from OU, and any second Organization is an error (it could not be told from a group).
    - Otherwise the tenant is the CN's part before the first `:` (so `system:admin` is in tenant
      `system`, a plain `alice` in no tenant) and groups come from O.

    Stricter than Arktos where it was ambiguous: a `tenant:` Organization anywhere (not only
    first) triggers the tenant rule, so it can never be mistaken for a group; a tenant holding
    `:` and a subject with several CNs are rejected; an empty CN is rejected, as in Arktos.
    """
    return CertIdentity(*identity_from_names(
        [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)],
        [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)],
        [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)],
    ))


@functools.lru_cache(maxsize=4096)
def _identity_from_der(der: bytes) -> CertIdentity:
    return identity_from_subject(x509.load_der_x509_certificate(der).subject)


def identity_from_certificate(cert: x509.Certificate | bytes) -> CertIdentity:
    """(user, groups, tenant) of a client certificate (DER bytes, PEM bytes or parsed).

    Used by the API server's X.509 authenticator on every TLS connection, so it is pure and
    cached by DER: the same few client certificates come back again and again.  It does not
    verify anything: the TLS handshake already checked the chain against the client CA.
    """
    if isinstance(cert, x509.Certificate):
        return identity_from_subject(cert.subject)
    if cert.startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    return _identity_from_der(bytes(cert))


# --------------------------------------------------------------------------------------------
# Keys, names, files
# --------------------------------------------------------------------------------------------


def generate_key(key_type: KeyType = "ec") -> PrivateKey:
    """A new private key: ECDSA P-256 (fast to make and to handshake) or RSA 2048 (for peers
    and JWT consumers that only speak RSA)."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}: use 'ec' or 'rsa'")


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: what Python's ssl, Go's crypto/tls and grpc all load."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: PrivateKey) -> bytes:
    """SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"), the form kube-style sa.pub files use."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Load an unencrypted PEM private key; only EC and RSA keys can sign certificates here."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PKIError(f"unsupported private key type {type(key).__name__}")
    return key


def _spki(key: PrivateKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _general_name(name: str) -> x509.GeneralName:
    """An IP literal becomes an IPAddress SAN (TLS clients never match IPs against DNSName
    entries), anything else a DNSName in its ASCII (A-label) form."""
    raw = name.strip()
    if not raw:
        raise ValueError("empty server name")
    with contextlib.suppress(ValueError):
        return x509.IPAddress(ipaddress.ip_address(raw.removeprefix("[").removesuffix("]")))
    if any(c.isspace() or c in "/:@" for c in raw):
        raise ValueError(f"{name!r} is neither an IP address nor a DNS name")
    dns = raw.lower() if raw.isascii() else raw.encode("idna").decode("ascii")
    return x509.DNSName(dns)


def _san_entries(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        gn = _general_name(n)
        if gn not in out:
            out.append(gn)
    if not out:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    return out


def _subject(common_name: str, organizations: Iterable[str] = (), units: Iterable[str] = ()) -> x509.Name:
    """O, then OU, then CN: the order Go's pkix.Name writes, so our certs read like kubeadm's."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, born with `mode`.

    The temporary file is created by os.open with the final mode, so a key is never readable by
    others, not even for an instant.  The fchmod runs on the still-empty file and only undoes the
    umask (a 077 umask would otherwise leave certificates unreadable to the components).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _ensure_dir(path: Path) -> None:
    """Create (or tighten) a private directory: it holds keys, so nobody else may list it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------------------------
# Certificate authority
# --------------------------------------------------------------------------------------------


class CertificateAuthority:
    """A CA certificate with its key: issues serving and client pairs.

    Issued leaves get a fresh key each (never the CA's), a random 159-bit serial, a not-before
    backdated by CLOCK_SKEW, and never outlive the CA.
    """

    def __init__(self, cert: x509.Certificate, key: PrivateKey) -> None:
        if _spki(cert.public_key()) != _spki(key):  # type: ignore[arg-type]
            raise PKIError("the CA key does not belong to the CA certificate")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise PKIError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
        self.cert = cert
        self.key = key

    # ---- creation and persistence

    @classmethod
    def create(cls, common_name: str, days: int = 3650, key_type: KeyType = "ec") -> CertificateAuthority:
        """A new self-signed CA (in memory; `save` writes it)."""
        key = generate_key(key_type)
        now = _now()
        name = _subject(common_name)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            # path_length=0: this CA signs leaves only, never intermediates.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        return cls(x509.load_pem_x509_certificate(cert_pem), load_private_key(key_pem))

    @classmethod
    def load(cls, directory: str | os.PathLike[str], name: str = "ca") -> CertificateAuthority:
        """Load `<name>.crt` and `<name>.key` from `directory`."""
        d = Path(directory)
        return cls.from_pem((d / f"{name}.crt").read_bytes(), (d / f"{name}.key").read_bytes())

    def save(self, directory: str | os.PathLike[str], name: str = "ca") -> CertPair:
        """Write `<name>.key` (0600) then `<name>.crt` (0644) into `directory` (made 0700)."""
        d = Path(directory)
        _ensure_dir(d)
        pair = CertPair(d / f"{name}.crt", d / f"{name}.key")
        _write_file(pair.key, self.key_pem, KEY_MODE)
        _write_file(pair.cert, self.cert_pem, CERT_MODE)
        return pair

    @classmethod
    def load_or_create(
        cls,
        directory: str | os.PathLike[str],
        common_name: str,
        name: str = "ca",
        days: int = 3650,
        key_type: KeyType = "ec",
    ) -> tuple[CertificateAuthority, bool]:
        """The CA in `directory`, created there if absent; returns (ca, created).

        Half a CA (a cert without its key, or the reverse) is an error rather than a reason to
        make a new one: replacing a CA silently would orphan every certificate it signed.
        """
        d = Path(directory)
        crt, key = d / f"{name}.crt", d / f"{name}.key"
        if crt.exists() and key.exists():
            ca = cls.load(d, name)
            if ca.cert.not_valid_after_utc <= _now():
                raise PKIError(f"{crt} has expired; remove {crt.name} and {key.name} to make a new CA")
            return ca, False
        if crt.exists() or key.exists():
            present = crt if crt.exists() else key
            raise PKIError(f"{present} exists without its pair; restore it or remove it to make a new CA")
        ca = cls.create(common_name, days=days, key_type=key_type)
        ca.save(d, name)
        return ca, True

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return private_key_pem(self.key)

    # ---- issuing

    def _issue(
        self,
        subject: x509.Name,
        key_type: KeyType,
        days: int,
        server: bool,
        sans: list[x509.GeneralName] | None = None,
    ) -> tuple[bytes, bytes]:
        key = generate_key(key_type)
        now = _now()
        not_after = min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc)
        try:
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            )
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False,
                    # RSA key transport (TLS 1.2 RSA key exchange) needs keyEncipherment; an EC
                    # key only ever signs.
                    key_encipherment=server and key_type == "rsa",
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(aki, critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)

    def issue_serving(
        self,
        names: Sequence[str],
        common_name: str | None = None,
        days: int = 365,
        key_type: KeyType = "ec",
    ) -> tuple[bytes, bytes]:
        """(cert_pem, key_pem) for a TLS server known by `names` (DNS names and IP literals).

        The CN defaults to the first name; clients match only the SANs, the CN is for humans.
        """
        sans = _san_entries(names)
        return self._issue(_subject(common_name or names[0].strip()), key_type, days, server=True, sans=sans)

    def issue_client(
        self,
        common_name: str,
        organizations: Sequence[str] = (),
        organizational_units: Sequence[str] = (),
        days: int = 365,
        key_type: KeyType = "ec",
    ) -> tuple[bytes, bytes]:
        """(cert_pem, key_pem) for a TLS client: CN is the user, O/OU carry tenant and groups
        (see `tenant_user_subject`, `system_subject`, `identity_from_certificate`)."""
        if not common_name:
            raise ValueError("a client certificate needs a common name (the user name)")
        subject = _subject(common_name, organizations, organizational_units)
        return self._issue(subject, key_type, days, server=False)


def create_ca(common_name: str, days: int = 3650, key_type: KeyType = "ec") -> CertificateAuthority:
    """A new self-signed CA in memory (`CertificateAuthority.save` writes it)."""
    return CertificateAuthority.create(common_name, days=days, key_type=key_type)


# --------------------------------------------------------------------------------------------
# The cluster's PKI directory
# --------------------------------------------------------------------------------------------


def _client_stem(name: str, orgs: Sequence[str]) -> str:
    """Where an on-demand client pair lives, relative to clients/.

    Tenant users go under tenants/<t>/ because the same user name exists in many tenants.  Names
    are percent-quoted (':' kept, it is legal in POSIX file names and keeps `system:node:n1`
    readable), which is injective, so two identities never share a file.
    """
    safe = ":@-._~+=,"
    if len(orgs) == 1 and orgs[0].startswith(TENANT_ORG_PREFIX):
        return f"tenants/{quote(orgs[0][len(TENANT_ORG_PREFIX):], safe=safe)}/{quote(name, safe=safe)}"
    return quote(name, safe=safe)


class ClusterPKI:
    """A kubeadm-style certificate directory for one cluster (see the module docstring).

    `ensure` is idempotent: what exists and is still good (pair matches, signed by the current
    CA, not near expiry, right subject / SANs) is left byte-for-byte alone; anything missing or
    stale is (re)issued.  Re-running reuses the CA, so certificates handed out earlier stay valid.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        key_type: KeyType = "ec",
        sa_key_type: KeyType = "rsa",
        ca_days: int = 3650,
        cert_days: int = 365,
        ca_name: str = "arktos-ca",
    ) -> None:
        """`sa_key_type` defaults to RSA: RS256 is what every JWT consumer verifies, and RSA
        verification (done per request by the API server) is faster than ECDSA's."""
        self.dir = Path(directory)
        self.key_type: KeyType = key_type
        self.sa_key_type: KeyType = sa_key_type
        self.ca_days = ca_days
        self.cert_days = cert_days
        self.ca_name = ca_name
        self.ca = self._pair("ca")
        self.apiserver = self._pair("apiserver")
        self.apiserver_kubelet_client = self._pair("apiserver-kubelet-client")
        self.front_proxy_ca = self._pair("front-proxy-ca")
        self.front_proxy_client = self._pair("front-proxy-client")
        self.admin = self._pair("admin")
        self.sa_key = self.dir / "sa.key"
        self.sa_pub = self.dir / "sa.pub"

    def _pair(self, stem: str) -> CertPair:
        return CertPair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers across processes: components started together may all ask for
        their client pair at once, and two CAs made in parallel would orphan half the leaves."""
        _ensure_dir(self.dir)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, KEY_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ---- public API

    def ensure(self, server_names: Sequence[str], include_defaults: bool = True) -> list[Path]:
        """Create whatever is missing or stale; return the files written (empty when all was
        already in place).  `server_names` go into the API server's SANs, followed by
        DEFAULT_APISERVER_NAMES unless `include_defaults` is false."""
        names = list(server_names) + (list(DEFAULT_APISERVER_NAMES) if include_defaults else [])
        written: list[Path] = []
        with self._locked():
            ca = self._ca("ca", self.ca_name, written)
            fp_ca = self._ca("front-proxy-ca", "front-proxy-ca", written)
            self._serving(ca, self.apiserver, "kube-apiserver", names, written)
            self._client(fp_ca, self.front_proxy_client, FRONT_PROXY_CLIENT, (), (), written)
            self._client(ca, self.admin, SYSTEM_ADMIN, (SYSTEM_MASTERS,), (), written)
            self._client(ca, self.apiserver_kubelet_client, APISERVER_KUBELET_CLIENT, (SYSTEM_MASTERS,), (), written)
            self._service_account_keys(written)
        return written

    def client(self, name: str, orgs: Sequence[str] = (), ous: Sequence[str] = ()) -> CertPair:
        """Paths of a client pair for CN `name`, O `orgs`, OU `ous`, issued by the cluster CA on
        first use and reused afterwards (reissued if the subject asked for changed or it went
        stale).  The CA must exist (`ensure` first)."""
        pair = CertPair(*(self.dir / "clients" / f"{_client_stem(name, orgs)}{ext}" for ext in (".crt", ".key")))
        with self._locked():
            if not (self.ca.cert.exists() and self.ca.key.exists()):
                raise PKIError(f"no cluster CA in {self.dir}: run ensure() first")
            ca = CertificateAuthority.load(self.dir, "ca")
            # One level at a time: mkdir(parents=True) would make the middle levels with the
            # umask's mode instead of 0700.
            d = self.dir
            for part in pair.cert.parent.relative_to(self.dir).parts:
                d = d / part
                _ensure_dir(d)
            self._client(ca, pair, name, tuple(orgs), tuple(ous), [])
        return pair

    def node_client(self, node_name: str) -> CertPair:
        """The node agent's client pair: CN `system:node:<name>`, O `system:nodes`."""
        return self.client(f"system:node:{node_name}", (SYSTEM_NODES,))

    def node_serving(self, node_name: str, names: Sequence[str] = ()) -> CertPair:
        """The serving pair of a node agent's logs/exec endpoint, which the API server verifies
        (--kubelet-certificate-authority) when it proxies pods/log and pods/exec: SANs are the node
        name, `names` (its addresses) and loopback.  Reissued when a name is missing."""
        stem = quote(node_name, safe=":@-._~+=,")
        pair = CertPair(self.dir / "nodes" / f"{stem}-serving.crt", self.dir / "nodes" / f"{stem}-serving.key")
        with self._locked():
            if not (self.ca.cert.exists() and self.ca.key.exists()):
                raise PKIError(f"no cluster CA in {self.dir}: run ensure() first")
            _ensure_dir(self.dir / "nodes")
            wanted = list(dict.fromkeys([node_name, *names, "localhost", "127.0.0.1"]))
            self._serving(self.load_ca(), pair, f"system:node:{node_name}", wanted, [])
        return pair

    def tenant_client(self, tenant: str, user: str, groups: Iterable[str] = ()) -> CertPair:
        """A tenant user's client pair (O `tenant:<t>`, OU = groups)."""
        subject = tenant_user_subject(tenant, user, groups)
        return self.client(subject.common_name, subject.organizations, subject.organizational_units)

    def load_ca(self) -> CertificateAuthority:
        return CertificateAuthority.load(self.dir, "ca")

    # ---- internals

    def _ca(self, stem: str, common_name: str, written: list[Path]) -> CertificateAuthority:
        ca, created = CertificateAuthority.load_or_create(
            self.dir, common_name, name=stem, days=self.ca_days, key_type=self.key_type
        )
        if created:
            written += [self.dir / f"{stem}.key", self.dir / f"{stem}.crt"]
        return ca

    def _current(
        self, ca: CertificateAuthority, pair: CertPair
    ) -> x509.Certificate | None:
        """The pair's certificate if the pair is usable as it is, else None."""
        try:
            cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
            key = load_private_key(pair.key.read_bytes())
        except (OSError, ValueError, PKIError):
            return None
        if _spki(cert.public_key()) != _spki(key):  # type: ignore[arg-type]
            return None
        try:
            cert.verify_directly_issued_by(ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            return None
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        if cert.not_valid_after_utc - _now() < min(dt.timedelta(days=7), lifetime / 5):
            return None
        return cert

    def _write_pair(self, pair: CertPair, cert_pem: bytes, key_pem: bytes, written: list[Path]) -> None:
        # Key first: a crash between the two leaves a mismatched pair, which _current rejects.
        _write_file(pair.key, key_pem, KEY_MODE)
        _write_file(pair.cert, cert_pem, CERT_MODE)
        written += [pair.key, pair.cert]

    def _serving(
        self, ca: CertificateAuthority, pair: CertPair, cn: str, names: Sequence[str], written: list[Path]
    ) -> None:
        wanted = _san_entries(names)
        cert = self._current(ca, pair)
        if cert is not None:
            try:
                have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                have = None
            if have is not None and all(n in have for n in wanted):
                return
        self._write_pair(pair, *ca.issue_serving(names, cn, days=self.cert_days, key_type=self.key_type), written)

    def _client(
        self,
        ca: CertificateAuthority,
        pair: CertPair,
        cn: str,
        orgs: tuple[str, ...],
        ous: tuple[str, ...],
        written: list[Path],
    ) -> None:
        cert = self._current(ca, pair)
        if cert is not None and cert.subject == _subject(cn, orgs, ous):
            return
        self._write_pair(pair, *ca.issue_client(cn, orgs, ous, days=self.cert_days, key_type=self.key_type), written)

    def _service_account_keys(self, written: list[Path]) -> None:
        """sa.key signs service-account tokens, sa.pub verifies them; a missing or mismatched
        sa.pub is rebuilt from sa.key (never the reverse: that would void issued tokens)."""
        if self.sa_key.exists():
            key = load_private_key(self.sa_key.read_bytes())
        else:
            key = generate_key(self.sa_key_type)
            _write_file(self.sa_key, private_key_pem(key), KEY_MODE)
            written.append(self.sa_key)
        try:
            current = _spki(serialization.load_pem_public_key(self.sa_pub.read_bytes()))  # type: ignore[arg-type]
        except (OSError, ValueError):
            current = b""
        if current != _spki(key):
            _write_file(self.sa_pub, public_key_pem(key), CERT_MODE)
            written.append(self.sa_pub)
