"""The node agent's HTTPS endpoint trusts the cluster CA alone, with a serving certificate for the node's names."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from cryptography import x509

from arktos.agent.server import ServingTLS
from arktos.cluster.pki import ClusterPKI


def test_only_the_cluster_ca_vouches_for_callers_and_the_node_certificate_names_the_node(tmp_path: Path) -> None:
    pki = ClusterPKI(tmp_path / "pki")
    pki.ensure(["localhost"])
    pair = pki.node_serving("node-a", ["10.1.2.3"])
    ctx = ServingTLS(str(pair.cert), str(pair.key), str(pki.ca.cert)).context()
    # The handshake is the only chain check: the system's public CAs must not be trusted for callers.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "arktos-ca"),),)]
    assert ctx.verify_mode == ssl.CERT_OPTIONAL  # no certificate: a 401 that says so, not a TLS alert
    san = x509.load_pem_x509_certificate(pair.cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-a", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3"),
                                                      ipaddress.ip_address("127.0.0.1")]
    assert pki.node_serving("node-a", ["10.1.2.3"]).cert.read_bytes() == pair.cert.read_bytes()  # kept
