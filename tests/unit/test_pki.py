"""The cluster PKI: chains, extensions, file modes, idempotence, Arktos identities, and a real
TLS handshake with mutual authentication over a loopback socket."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from arktos.cluster.pki import (
    CLOCK_SKEW,
    SYSTEM_ADMIN,
    SYSTEM_MASTERS,
    CertificateAuthority,
    ClusterPKI,
    PKIError,
    create_ca,
    identity_from_certificate,
    system_subject,
    tenant_user_subject,
)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return create_ca("test-ca")


@pytest.fixture
def pki(tmp_path: Path) -> ClusterPKI:
    p = ClusterPKI(tmp_path / "pki")
    p.ensure(["api.example.com", "10.0.0.1"])
    return p


# ---------------------------------------------------------------- CA and issued certificates


def test_ca_extensions(ca: CertificateAuthority) -> None:
    cert = ca.cert
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey) and ca.key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)  # self-signed
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC) - CLOCK_SKEW + dt.timedelta(seconds=30)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= dt.timedelta(days=3650)


def test_serving_certificate(ca: CertificateAuthority) -> None:
    cert_pem, key_pem = ca.issue_serving(["api.example.com", "10.0.0.1", "::1", "LocalHost"], "kube-apiserver")
    cert = _cert(cert_pem)
    cert.verify_directly_issued_by(ca.cert)
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example.com", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-apiserver"
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment and not ku.key_cert_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    )
    assert _ext(cert, x509.SubjectKeyIdentifier).value.digest != _ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    # Backdated for clock skew, and never outliving the CA.
    assert cert.not_valid_before_utc < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)
    assert cert.not_valid_after_utc <= ca.cert.not_valid_after_utc


def test_rsa_serving_has_key_encipherment(ca: CertificateAuthority) -> None:
    cert_pem, _ = ca.issue_serving(["example.com"], key_type="rsa")
    cert = _cert(cert_pem)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    cert.verify_directly_issued_by(ca.cert)


def test_rsa_ca_signs() -> None:
    rsa_ca = create_ca("rsa-ca", key_type="rsa")
    cert = _cert(rsa_ca.issue_client("u", ["g"])[0])
    cert.verify_directly_issued_by(rsa_ca.cert)


def test_client_certificate(ca: CertificateAuthority) -> None:
    cert_pem, _ = ca.issue_client("alice", ["tenant:acme"], ["devs", "ops"])
    cert = _cert(cert_pem)
    cert.verify_directly_issued_by(ca.cert)
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.SubjectAlternativeName)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["devs", "ops"]


def test_serials_are_random(ca: CertificateAuthority) -> None:
    serials = {_cert(ca.issue_client("u", [])[0]).serial_number for _ in range(5)}
    assert len(serials) == 5 and all(s > 2**64 for s in serials)


def test_not_issued_by_another_ca(ca: CertificateAuthority) -> None:
    other = create_ca("other")
    cert = _cert(other.issue_client("mallory", [SYSTEM_MASTERS])[0])
    with pytest.raises(ValueError):  # issuer name differs
        cert.verify_directly_issued_by(ca.cert)
    namesake = create_ca("test-ca")  # same name, other key: the signature gives it away
    cert = _cert(namesake.issue_client("mallory", [SYSTEM_MASTERS])[0])
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(ca.cert)
    with pytest.raises(InvalidSignature):
        ca.cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


@pytest.mark.parametrize("bad", [[], [""], ["host:443"], ["a b"]])
def test_bad_server_names(ca: CertificateAuthority, bad: list[str]) -> None:
    with pytest.raises(ValueError):
        ca.issue_serving(bad, "x")


def test_ca_save_and_load(tmp_path: Path, ca: CertificateAuthority) -> None:
    pair = ca.save(tmp_path / "d", "ca")
    assert _mode(pair.key) == 0o600 and _mode(pair.cert) == 0o644 and _mode(tmp_path / "d") == 0o700
    loaded = CertificateAuthority.load(tmp_path / "d")
    assert loaded.cert == ca.cert
    again, created = CertificateAuthority.load_or_create(tmp_path / "d", "ignored")
    assert not created and again.cert == ca.cert


def test_half_a_ca_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    pair = ca.save(tmp_path, "ca")
    pair.key.unlink()
    with pytest.raises(PKIError):
        CertificateAuthority.load_or_create(tmp_path, "x")


# ---------------------------------------------------------------- ClusterPKI directory


def test_layout_and_modes(pki: ClusterPKI) -> None:
    d = pki.dir
    names = {"ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client", "admin"}
    for stem in names:
        assert _mode(d / f"{stem}.key") == 0o600, stem
        assert _mode(d / f"{stem}.crt") == 0o644, stem
    assert _mode(d / "sa.key") == 0o600 and _mode(d / "sa.pub") == 0o644
    assert _mode(d) == 0o700
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_modes_ignore_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        p = ClusterPKI(tmp_path / "pki")
        p.ensure(["localhost"])
        node = p.node_client("n1")
    finally:
        os.umask(old)
    assert _mode(p.ca.cert) == 0o644 and _mode(p.ca.key) == 0o600
    assert _mode(node.cert) == 0o644 and _mode(node.key) == 0o600 and _mode(p.dir) == 0o700


def test_chains(pki: ClusterPKI) -> None:
    ca = _cert(pki.ca.cert.read_bytes())
    fp_ca = _cert(pki.front_proxy_ca.cert.read_bytes())
    assert ca != fp_ca
    for pair in (pki.apiserver, pki.admin, pki.apiserver_kubelet_client):
        _cert(pair.cert.read_bytes()).verify_directly_issued_by(ca)
    fp_client = _cert(pki.front_proxy_client.cert.read_bytes())
    fp_client.verify_directly_issued_by(fp_ca)
    with pytest.raises(ValueError):
        fp_client.verify_directly_issued_by(ca)  # a different CA: issuer name mismatch


def test_apiserver_sans(pki: ClusterPKI) -> None:
    san = _ext(_cert(pki.apiserver.cert.read_bytes()), x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert "api.example.com" in dns and "kubernetes.default.svc" in dns and "localhost" in dns
    assert ipaddress.ip_address("10.0.0.1") in ips and ipaddress.ip_address("127.0.0.1") in ips
    assert "10.0.0.1" not in dns


def test_admin_identity(pki: ClusterPKI) -> None:
    assert identity_from_certificate(pki.admin.cert.read_bytes()) == (SYSTEM_ADMIN, (SYSTEM_MASTERS,), "system")


def test_sa_keys(pki: ClusterPKI) -> None:
    key = serialization.load_pem_private_key(pki.sa_key.read_bytes(), None)
    pub = serialization.load_pem_public_key(pki.sa_pub.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert key.public_key().public_numbers() == pub.public_numbers()
    ec_pki = ClusterPKI(pki.dir.parent / "ec", sa_key_type="ec")
    ec_pki.ensure(["x"])
    assert isinstance(serialization.load_pem_private_key(ec_pki.sa_key.read_bytes(), None), ec.EllipticCurvePrivateKey)


def _snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


def test_ensure_is_idempotent(pki: ClusterPKI) -> None:
    before = _snapshot(pki.dir)
    assert pki.ensure(["api.example.com", "10.0.0.1"]) == []
    assert ClusterPKI(pki.dir).ensure(["10.0.0.1"]) == []  # a subset of the SANs is still covered
    assert _snapshot(pki.dir) == before


def test_ensure_repairs_only_what_is_missing(pki: ClusterPKI) -> None:
    ca_before = pki.ca.cert.read_bytes()
    admin_before = pki.admin.cert.read_bytes()
    pki.apiserver.key.unlink()
    pki.sa_pub.unlink()
    written = pki.ensure(["api.example.com", "10.0.0.1"])
    assert set(written) == {pki.apiserver.key, pki.apiserver.cert, pki.sa_pub}
    assert pki.ca.cert.read_bytes() == ca_before and pki.admin.cert.read_bytes() == admin_before
    _cert(pki.apiserver.cert.read_bytes()).verify_directly_issued_by(_cert(ca_before))


def test_new_server_name_reissues_serving_cert(pki: ClusterPKI) -> None:
    written = pki.ensure(["api.example.com", "10.0.0.1", "192.168.1.5"])
    assert set(written) == {pki.apiserver.key, pki.apiserver.cert}
    san = _ext(_cert(pki.apiserver.cert.read_bytes()), x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.168.1.5") in san.get_values_for_type(x509.IPAddress)


def test_new_ca_reissues_leaves(pki: ClusterPKI) -> None:
    pki.ca.cert.unlink()
    pki.ca.key.unlink()
    written = pki.ensure(["api.example.com"])
    assert pki.admin.cert in written and pki.apiserver.cert in written
    assert pki.front_proxy_client.cert not in written  # its CA did not change
    _cert(pki.admin.cert.read_bytes()).verify_directly_issued_by(_cert(pki.ca.cert.read_bytes()))


def test_half_a_ca_in_cluster_dir_is_refused(pki: ClusterPKI) -> None:
    pki.ca.key.unlink()
    with pytest.raises(PKIError):
        pki.ensure(["api.example.com"])


def test_component_clients_cached(pki: ClusterPKI) -> None:
    sched = pki.client("system:kube-scheduler", [])
    assert sched.cert.name == "system:kube-scheduler.crt" and sched.cert.parent == pki.dir / "clients"
    assert _mode(sched.key) == 0o600 and _mode(sched.cert) == 0o644 and _mode(pki.dir / "clients") == 0o700
    first = sched.cert.read_bytes()
    assert pki.client("system:kube-scheduler", []).cert.read_bytes() == first
    assert identity_from_certificate(first) == ("system:kube-scheduler", (), "system")

    node = pki.node_client("node-1")
    assert identity_from_certificate(node.cert.read_bytes()) == ("system:node:node-1", ("system:nodes",), "system")
    _cert(node.cert.read_bytes()).verify_directly_issued_by(_cert(pki.ca.cert.read_bytes()))

    # Asking for other groups under the same name reissues rather than handing back the old identity.
    changed = pki.client("system:kube-scheduler", ["extra"])
    assert identity_from_certificate(changed.cert.read_bytes()).groups == ("extra",)


def test_tenant_clients_do_not_collide(pki: ClusterPKI) -> None:
    a = pki.tenant_client("acme", "alice", ["devs"])
    b = pki.tenant_client("globex", "alice", [])
    assert a.cert != b.cert
    assert _mode(pki.dir / "clients" / "tenants") == 0o700 and _mode(a.cert.parent) == 0o700
    assert identity_from_certificate(a.cert.read_bytes()) == ("alice", ("devs",), "acme")
    assert identity_from_certificate(b.cert.read_bytes()) == ("alice", (), "globex")


def test_client_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(PKIError):
        ClusterPKI(tmp_path / "empty").client("system:kube-scheduler")


# ---------------------------------------------------------------- identities (ARKTOS.md section 2)


def _identity(ca: CertificateAuthority, cn: str, orgs: list[str], ous: list[str] = ()) -> tuple:
    der = _cert(ca.issue_client(cn, orgs, list(ous))[0]).public_bytes(serialization.Encoding.DER)
    by_der = identity_from_certificate(der)
    assert identity_from_certificate(x509.load_der_x509_certificate(der)) == by_der
    return tuple(by_der)


def test_identity_tenant_organization(ca: CertificateAuthority) -> None:
    assert _identity(ca, "alice", ["tenant:acme"], ["devs", "ops"]) == ("alice", ("devs", "ops"), "acme")
    assert _identity(ca, "admin", ["tenant:acme"]) == ("admin", (), "acme")


def test_identity_tenant_organization_with_second_o_is_an_error(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError):
        _identity(ca, "alice", ["tenant:acme", "system:masters"])
    with pytest.raises(ValueError):  # order does not matter: a tenant O can never pass as a group
        _identity(ca, "alice", ["system:masters", "tenant:acme"])
    with pytest.raises(ValueError):
        _identity(ca, "alice", ["tenant:a:b"])


def test_identity_from_common_name(ca: CertificateAuthority) -> None:
    assert _identity(ca, "system:admin", ["system:masters"]) == ("system:admin", ("system:masters",), "system")
    assert _identity(ca, "acme:bob", ["g1", "g2"], ["ignored"]) == ("acme:bob", ("g1", "g2"), "acme")
    assert _identity(ca, "system:node:n1", ["system:nodes"]) == ("system:node:n1", ("system:nodes",), "system")
    assert _identity(ca, "plain", []) == ("plain", (), "")  # no tenant: the API server will refuse short paths


def test_identity_accepts_pem(ca: CertificateAuthority) -> None:
    pem = ca.issue_client("system:admin", [SYSTEM_MASTERS])[0]
    user, groups, tenant = identity_from_certificate(pem)
    assert (user, groups, tenant) == ("system:admin", ("system:masters",), "system")


def test_subject_helpers(ca: CertificateAuthority) -> None:
    s = tenant_user_subject("acme", "alice", ["devs"])
    assert s == ("alice", ("tenant:acme",), ("devs",))
    assert identity_from_certificate(ca.issue_client(*s)[0]) == ("alice", ("devs",), "acme")
    s2 = system_subject("system:admin", [SYSTEM_MASTERS])
    assert identity_from_certificate(ca.issue_client(*s2)[0]) == ("system:admin", ("system:masters",), "system")
    for bad in [("", "u"), ("a:b", "u"), ("t", "")]:
        with pytest.raises(ValueError):
            tenant_user_subject(*bad)
    with pytest.raises(ValueError):
        system_subject("admin")


# ---------------------------------------------------------------- real TLS handshake


def _server_context(pki: ClusterPKI) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.apiserver.cert, pki.apiserver.key)
    ctx.load_verify_locations(cafile=pki.ca.cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _client_context(ca_file: Path, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=ca_file)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str
) -> tuple[object, bytes | Exception]:
    """Serve one connection on 127.0.0.1; return (what the server saw, what the client got)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: list[object] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert(binary_form=True)
                seen.append(identity_from_certificate(peer))
                tls.recv(16)
                tls.sendall(b"pong")
        except Exception as e:
            seen.append(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"ping")
            got: bytes | Exception = tls.recv(16)
    except (ssl.SSLError, OSError) as e:
        got = e
    finally:
        t.join(15)
        listener.close()
    return seen[0], got


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost", "api.example.com"])
def test_tls_mutual_auth(pki: ClusterPKI, server_hostname: str) -> None:
    client = pki.client("system:kube-scheduler")
    seen, got = _handshake(_server_context(pki), _client_context(pki.ca.cert, *client), server_hostname)
    assert got == b"pong"
    assert seen == ("system:kube-scheduler", (), "system")


def test_tls_tenant_user(pki: ClusterPKI) -> None:
    client = pki.tenant_client("acme", "alice", ["devs"])
    seen, got = _handshake(_server_context(pki), _client_context(pki.ca.cert, *client), "localhost")
    assert got == b"pong" and seen == ("alice", ("devs",), "acme")


def test_tls_client_cert_from_another_ca_is_refused(pki: ClusterPKI, tmp_path: Path) -> None:
    other = ClusterPKI(tmp_path / "other")
    other.ensure(["localhost"])
    seen, got = _handshake(_server_context(pki), _client_context(pki.ca.cert, *other.admin), "localhost")
    assert isinstance(seen, ssl.SSLError)
    assert isinstance(got, Exception) or got == b""


def test_tls_without_client_cert_is_refused(pki: ClusterPKI) -> None:
    seen, got = _handshake(_server_context(pki), _client_context(pki.ca.cert, None, None), "localhost")
    assert isinstance(seen, ssl.SSLError)
    assert isinstance(got, Exception) or got == b""


def test_tls_wrong_server_name_is_refused(pki: ClusterPKI) -> None:
    client = pki.client("system:kube-scheduler")
    seen, got = _handshake(_server_context(pki), _client_context(pki.ca.cert, *client), "evil.example.com")
    assert isinstance(got, ssl.SSLCertVerificationError)
    assert isinstance(seen, Exception)


def test_tls_front_proxy_client_is_not_a_cluster_client(pki: ClusterPKI) -> None:
    """The front proxy's CA is separate: its client cannot authenticate as a cluster client."""
    seen, _ = _handshake(_server_context(pki), _client_context(pki.ca.cert, *pki.front_proxy_client), "localhost")
    assert isinstance(seen, ssl.SSLError)


def test_tls_rsa_cluster(tmp_path: Path) -> None:
    rsa_pki = ClusterPKI(tmp_path / "rsa", key_type="rsa")
    rsa_pki.ensure(["localhost"])
    assert isinstance(_cert(rsa_pki.apiserver.cert.read_bytes()).public_key(), rsa.RSAPublicKey)
    seen, got = _handshake(_server_context(rsa_pki), _client_context(rsa_pki.ca.cert, *rsa_pki.admin), "localhost")
    assert got == b"pong" and seen == ("system:admin", ("system:masters",), "system")
