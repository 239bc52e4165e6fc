"""The cluster DNS's answers: a pure function of Services, Endpoints, pod IPs, the question and the asker."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from arktos.dns.records import FORWARD, HOST, Asker, DnsConfig, DnsState, answer, pod_search_domains

CONFIG = DnsConfig(authoritative_reverse=("10.0.0.0/24",))
A, B = Asker("acme"), Asker("beta")


def svc(tenant, ns, name, ip="10.0.0.20", ports=(("http", 80, "TCP"),), **spec):
    return {"metadata": {"tenant": tenant, "namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports],
                     **spec}}


def eps(tenant, ns, name, ready, not_ready=(), ports=(("http", 8080, "TCP"),)):
    def addr(a):
        ip, _, host = a.partition("/")
        return {"ip": ip, **({"hostname": host} if host else {})}
    return {"metadata": {"tenant": tenant, "namespace": ns, "name": name},
            "subsets": [{"addresses": [addr(a) for a in ready], "notReadyAddresses": [addr(a) for a in not_ready],
                         "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}]}


@pytest.fixture
def state():
    s = DnsState()
    s.put_service(svc("acme", "default", "web", "10.0.0.20"))
    s.put_endpoints(eps("acme", "default", "web", ["10.88.0.5", "10.88.0.6"]))
    s.put_service(svc("acme", "shop", "db", "None", ports=(("pg", 5432, "TCP"),)))
    s.put_endpoints(eps("acme", "shop", "db", ["10.88.0.7/db-0", "10.88.0.8"], not_ready=["10.88.0.9"],
                        ports=(("pg", 5432, "TCP"),)))
    s.put_service(svc("beta", "default", "web", "10.0.0.30"))
    s.put_service({"metadata": {"tenant": "acme", "namespace": "default", "name": "ext"},
                   "spec": {"type": "ExternalName", "externalName": "example.com"}})
    return s


def ask(state, name, qtype="A", asker=A):
    return answer(state, dns.message.make_query(name, qtype), asker, CONFIG)


def records(response, section="answer"):
    return sorted(f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)} {r.to_text()}"
                  for rr in getattr(response, section) for r in rr)


def test_a_records_of_a_cluster_ip_service_explicit_and_implicit(state):
    for name in ("web.default.svc.acme.cluster.local.", "web.default.svc.cluster.local.",
                 "WEB.Default.SVC.acme.Cluster.Local."):
        r = ask(state, name)
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert [x.to_text() for rr in r.answer for x in rr] == ["10.0.0.20"]
        assert r.answer[0].ttl == 5
    # Implicit names are the asker's own tenant's: beta's web for beta.
    assert records(ask(state, "web.default.svc.cluster.local.", asker=B)) == [
        "web.default.svc.cluster.local. A 10.0.0.30"]


def test_another_tenants_names_look_like_names_that_do_not_exist(state):
    theirs = ask(state, "web.default.svc.beta.cluster.local.")
    absent = ask(state, "nothing.default.svc.acme.cluster.local.")
    for r in (theirs, absent):
        assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer
        assert records(r, "authority")[0].startswith("cluster.local. SOA ns.dns.cluster.local. hostmaster.")
    for name in ("default.svc.beta.cluster.local.", "svc.beta.cluster.local.", "beta.cluster.local.",
                 "_http._tcp.web.default.svc.beta.cluster.local."):
        assert ask(state, name, "ANY").rcode() == dns.rcode.NXDOMAIN, name
    # ... while the system tenant's pods and the host see every tenant's explicit names.
    assert records(ask(state, "web.default.svc.beta.cluster.local.", asker=HOST)) == [
        "web.default.svc.beta.cluster.local. A 10.0.0.30"]


def test_search_path_of_a_pod(state):
    assert pod_search_domains("default", "acme") == ["default.svc.acme.cluster.local", "svc.acme.cluster.local",
                                                     "acme.cluster.local"]
    # `web.shop` through the search path: the first expansion is NXDOMAIN, the second is db's namespace.
    assert ask(state, "web.shop.default.svc.acme.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert ask(state, "db.shop.svc.acme.cluster.local.").answer
    # Namespaces and the tenant's apex exist (no data) while they have services.
    for name in ("shop.svc.acme.cluster.local.", "svc.acme.cluster.local.", "acme.cluster.local."):
        r = ask(state, name)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority, name
    assert ask(state, "empty.svc.acme.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_no_data_of_another_type(state):
    r = ask(state, "web.default.svc.acme.cluster.local.", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and records(r, "authority")[0].startswith(
        "cluster.local. SOA")
    r = ask(state, "web.default.svc.acme.cluster.local.", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


def test_headless_service_gives_its_ready_endpoints_and_their_names(state):
    assert records(ask(state, "db.shop.svc.acme.cluster.local.")) == [
        "db.shop.svc.acme.cluster.local. A 10.88.0.7", "db.shop.svc.acme.cluster.local. A 10.88.0.8"]
    assert records(ask(state, "db-0.db.shop.svc.acme.cluster.local.")) == [
        "db-0.db.shop.svc.acme.cluster.local. A 10.88.0.7"]
    assert records(ask(state, "10-88-0-8.db.shop.svc.cluster.local.")) == [
        "10-88-0-8.db.shop.svc.cluster.local. A 10.88.0.8"]
    # Not ready: no name.
    assert ask(state, "10-88-0-9.db.shop.svc.acme.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    # A ClusterIP service's endpoints have names too.
    assert records(ask(state, "10-88-0-5.web.default.svc.acme.cluster.local.")) == [
        "10-88-0-5.web.default.svc.acme.cluster.local. A 10.88.0.5"]


def test_srv_records(state):
    r = ask(state, "_http._tcp.web.default.svc.acme.cluster.local.", "SRV")
    assert records(r) == ["_http._tcp.web.default.svc.acme.cluster.local. SRV 0 100 80 "
                          "web.default.svc.acme.cluster.local."]
    assert records(r, "additional") == ["web.default.svc.acme.cluster.local. A 10.0.0.20"]
    r = ask(state, "_pg._tcp.db.shop.svc.cluster.local.", "SRV")
    assert records(r) == [
        "_pg._tcp.db.shop.svc.cluster.local. SRV 0 100 5432 10-88-0-8.db.shop.svc.cluster.local.",
        "_pg._tcp.db.shop.svc.cluster.local. SRV 0 100 5432 db-0.db.shop.svc.cluster.local."]
    assert records(r, "additional") == ["10-88-0-8.db.shop.svc.cluster.local. A 10.88.0.8",
                                        "db-0.db.shop.svc.cluster.local. A 10.88.0.7"]
    # The service name itself: SRV for every named port.
    assert len(ask(state, "web.default.svc.acme.cluster.local.", "SRV").answer[0]) == 1
    # Wrong protocol or port name: no such name; right name, other type: no data.
    assert ask(state, "_http._udp.web.default.svc.acme.cluster.local.", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(state, "_https._tcp.web.default.svc.acme.cluster.local.", "SRV").rcode() == dns.rcode.NXDOMAIN
    r = ask(state, "_http._tcp.web.default.svc.acme.cluster.local.", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


def test_external_name_is_a_cname(state):
    assert records(ask(state, "ext.default.svc.acme.cluster.local.")) == [
        "ext.default.svc.acme.cluster.local. CNAME example.com."]


def test_ptr_for_cluster_ips_and_endpoints_of_the_askers_tenant_only(state):
    assert records(ask(state, "20.0.0.10.in-addr.arpa.", "PTR")) == [
        "20.0.0.10.in-addr.arpa. PTR web.default.svc.acme.cluster.local."]
    assert records(ask(state, "7.0.88.10.in-addr.arpa.", "PTR")) == [
        "7.0.88.10.in-addr.arpa. PTR db-0.db.shop.svc.acme.cluster.local."]
    # beta's ClusterIP is in the service range: ours, and to acme it does not exist.
    r = ask(state, "30.0.0.10.in-addr.arpa.", "PTR")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
    assert records(ask(state, "30.0.0.10.in-addr.arpa.", "PTR", asker=B)) == [
        "30.0.0.10.in-addr.arpa. PTR web.default.svc.beta.cluster.local."]
    # Not ours (outside the service range, no endpoint of acme's): the upstream resolvers'.
    assert ask(state, "5.0.88.10.in-addr.arpa.", "PTR", asker=B) is FORWARD
    assert ask(state, "1.2.0.192.in-addr.arpa.", "PTR") is FORWARD


def test_outside_the_zone_is_forwarded_and_unknown_askers_are_refused(state):
    assert ask(state, "example.com.") is FORWARD
    assert ask(state, "example.com.", asker=None) is FORWARD
    assert ask(state, "cluster.local.example.com.") is FORWARD
    r = ask(state, "web.default.svc.acme.cluster.local.", asker=None)
    assert r.rcode() == dns.rcode.REFUSED and not r.answer
    assert ask(state, "20.0.0.10.in-addr.arpa.", "PTR", asker=None).rcode() == dns.rcode.REFUSED


def test_zone_apex_and_odd_queries(state):
    r = ask(state, "cluster.local.", "SOA")
    assert records(r)[0].startswith("cluster.local. SOA ns.dns.cluster.local.")
    assert ask(state, "foo.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    q = dns.message.make_query("web.default.svc.acme.cluster.local.", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    assert answer(state, q, A, CONFIG).rcode() == dns.rcode.NOTIMP


def test_a_tenant_called_svc(state):
    state.put_service(svc("svc", "ns", "web", "10.0.0.40"))
    state.put_service(svc("svc", "svc", "api", "10.0.0.41"))
    mine = Asker("svc")
    assert records(ask(state, "web.ns.svc.svc.cluster.local.", asker=mine)) == [
        "web.ns.svc.svc.cluster.local. A 10.0.0.40"]
    assert records(ask(state, "api.svc.svc.cluster.local.", asker=mine)) == [
        "api.svc.svc.cluster.local. A 10.0.0.41"]
    assert ask(state, "web.ns.svc.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_state_follows_changes_and_pod_ips():
    s = DnsState()
    s.put_service(svc("acme", "default", "web"))
    serial = s.serial
    s.delete_service(svc("acme", "default", "web"))
    assert s.serial > serial and not s.has_tenant("acme") and not s.has_namespace("acme", "default")
    assert ask(s, "web.default.svc.acme.cluster.local.").rcode() == dns.rcode.NXDOMAIN

    def pod(tenant, name, ip, uid, **extra):
        return {"metadata": {"tenant": tenant, "namespace": "default", "name": name, "uid": uid},
                "spec": {"hostNetwork": extra.pop("host", False)}, "status": {"podIP": ip, **extra}}
    s.put_pod(pod("acme", "a", "10.88.0.5", "u1"))
    s.put_pod(pod("acme", "h", "192.0.2.2", "u2", host=True))
    s.put_pod(pod("beta", "done", "10.88.0.6", "u3", phase="Succeeded"))
    assert s.pod_tenant("10.88.0.5") == "acme"
    assert s.pod_tenant("192.0.2.2") is None and s.pod_tenant("10.88.0.6") is None
    # The address reused by another tenant's pod before the old pod's deletion arrived: nobody's.
    s.put_pod(pod("beta", "b", "10.88.0.5", "u4"))
    assert s.pod_tenant("10.88.0.5") is None
    s.delete_pod(pod("acme", "a", "10.88.0.5", "u1"))
    assert s.pod_tenant("10.88.0.5") == "beta"
    s.put_pod(pod("beta", "b", "10.88.0.7", "u4"))  # an update moves it
    assert s.pod_tenant("10.88.0.5") is None and s.pod_tenant("10.88.0.7") == "beta"


def test_truncation_over_udp(state):
    many = [f"10.88.1.{i}" for i in range(1, 60)]
    state.put_service(svc("acme", "default", "big", "None"))
    state.put_endpoints(eps("acme", "default", "big", many))
    q = dns.message.make_query("big.default.svc.acme.cluster.local.", "A")  # no EDNS: 512 bytes
    wire = answer(state, q, A, CONFIG).to_wire(max_size=512, prefer_truncation=True)
    r = dns.message.from_wire(wire)
    assert r.flags & dns.flags.TC and len(wire) <= 512


def test_pods_with_a_subdomain_get_hostname_names_through_the_endpoints_controller():
    from arktos.controllers.endpoints import endpoint_subsets

    def pod(name, ip, hostname, subdomain):
        return {"metadata": {"tenant": "acme", "namespace": "shop", "name": name, "uid": name},
                "spec": {"hostname": hostname, "subdomain": subdomain, "containers": []},
                "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    db = svc("acme", "shop", "db", "None", ports=(("pg", 5432, "TCP"),))
    s = DnsState()
    s.put_service(db)
    s.put_endpoints({"metadata": {"tenant": "acme", "namespace": "shop", "name": "db"},
                     "subsets": endpoint_subsets(db, [pod("db-0", "10.88.0.7", "db-0", "db"),
                                                      pod("x", "10.88.0.8", "x", "elsewhere")])})
    assert records(ask(s, "db-0.db.shop.svc.acme.cluster.local.")) == [
        "db-0.db.shop.svc.acme.cluster.local. A 10.88.0.7"]
    assert ask(s, "x.db.shop.svc.acme.cluster.local.").rcode() == dns.rcode.NXDOMAIN  # another subdomain's
    assert ask(s, "10-88-0-8.db.shop.svc.acme.cluster.local.").answer
