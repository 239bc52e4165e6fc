"""The service proxy's rules renderer: Services + Endpoints -> iptables-restore text (a pure function)."""

from __future__ import annotations

import re

import pytest

from arktos.proxy.rules import Options, jump_rules, render, service_ports


def svc(name: str, ip: str, *ports: dict, tenant: str = "acme", ns: str = "default", created: str = "2024-01-01",
        **spec) -> dict:
    return {"metadata": {"tenant": tenant, "namespace": ns, "name": name, "creationTimestamp": created},
            "spec": {"clusterIP": ip, "ports": list(ports) or [{"port": 80, "protocol": "TCP"}], **spec}}


def eps(*ips: str, port: int = 8080, name: str = "", not_ready: tuple[str, ...] = ()) -> dict:
    p = {"port": port, "protocol": "TCP", **({"name": name} if name else {})}
    return {"subsets": [{"addresses": [{"ip": ip} for ip in ips],
                         "notReadyAddresses": [{"ip": ip} for ip in not_ready], "ports": [p]}]}


def chain(text: str, name: str) -> list[str]:
    return [line[len(f"-A {name} "):] for line in text.splitlines() if line.startswith(f"-A {name} ")]


def test_cluster_ip_spreads_over_ready_endpoints_with_statistic_rules():
    ports = service_ports([svc("web", "10.0.0.20")], {"acme/default/web": eps("10.88.0.3", "10.88.0.2",
                                                                             not_ready=("10.88.0.9",))})
    assert [(p.key, p.endpoints) for p in ports] == [("acme/default/web", (("10.88.0.2", 8080), ("10.88.0.3", 8080)))]
    out = render(ports, Options(prefix="T-")).text
    (jump,) = [r for r in chain(out, "T-SERVICES") if "10.0.0.20" in r]
    assert "-d 10.0.0.20/32 -p tcp -m tcp --dport 80 -j T-SVC-" in jump
    svc_chain = jump.split("-j ")[-1]
    rules = chain(out, svc_chain)
    assert len(rules) == 2 and "--probability 0.50000000000" in rules[0] and "statistic" not in rules[1]
    seps = [r.split("-j ")[-1] for r in rules]
    assert next(r for r in chain(out, seps[0]) if "DNAT" in r).endswith("-j DNAT --to-destination 10.88.0.2:8080")
    # Hairpin: an endpoint on no known bridge masquerades only itself.
    assert chain(out, seps[0])[0].endswith("-s 10.88.0.2/32 -j T-MARK-MASQ")
    # The node-ports jump is the last rule of SERVICES; no REJECT for a service with endpoints.
    assert chain(out, "T-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL -j T-NODEPORTS")
    assert "REJECT" not in out


def test_three_endpoints_get_equal_chances():
    ports = service_ports([svc("web", "10.0.0.20")], {"acme/default/web": eps("10.1.0.1", "10.1.0.2", "10.1.0.3")})
    out = render(ports, Options()).text
    svc_chain = chain(out, "KUBE-SERVICES")[0].split("-j ")[-1]
    probs = [re.search(r"--probability (\S+)", r) for r in chain(out, svc_chain)]
    assert [m.group(1) if m else None for m in probs] == ["0.33333333333", "0.50000000000", None]


def test_endpoints_on_a_local_bridge_masquerade_their_whole_subnet():
    ports = service_ports([svc("web", "10.0.0.20")], {"acme/default/web": eps("10.88.0.2", "10.9.0.2")})
    out = render(ports, Options(local_subnets=("10.88.0.0/24",))).text
    sources = [r for r in out.splitlines() if "-j KUBE-MARK-MASQ" in r and "-s " in r]
    assert sorted(re.search(r"-s (\S+)", r).group(1) for r in sources) == ["10.88.0.0/24", "10.9.0.2/32"]


def test_a_service_without_endpoints_is_rejected_in_the_filter_table():
    ports = service_ports([svc("db", "10.0.0.30", {"port": 5432, "protocol": "TCP", "nodePort": 30001},
                               type="NodePort")], {"acme/default/db": eps(not_ready=("10.88.0.4",))})
    out = render(ports, Options()).text
    nat, flt = out.split("*filter")
    assert "10.0.0.30" not in nat and "30001" not in nat
    assert ('-A KUBE-SERVICES -m comment --comment "acme/default/db has no endpoints" -d 10.0.0.30/32 -p tcp '
            '-m tcp --dport 5432 -j REJECT --reject-with icmp-port-unreachable') in flt
    assert "--dport 30001 -j REJECT" in "\n".join(chain(flt, "KUBE-EXTERNAL-SERVICES"))


def test_node_port_masquerades_and_jumps_to_the_service_chain():
    ports = service_ports([svc("web", "10.0.0.20", {"port": 80, "protocol": "TCP", "nodePort": 30080},
                               type="NodePort")], {"acme/default/web": eps("10.88.0.2")})
    out = render(ports, Options()).text
    (np,) = chain(out, "KUBE-NODEPORTS")
    assert "-p tcp -m tcp --dport 30080 -j KUBE-EXT-" in np
    ext = chain(out, np.split("-j ")[-1])
    assert ext[0].endswith("-j KUBE-MARK-MASQ") and ext[1].startswith("-j KUBE-SVC-")
    # A ClusterIP service's nodePort field (left over from a type change) opens nothing.
    ports = service_ports([svc("web", "10.0.0.20", {"port": 80, "protocol": "TCP", "nodePort": 30080})],
                          {"acme/default/web": eps("10.88.0.2")})
    assert ports[0].node_port is None
    # No node ports on 127.0.0.1 when turned off.
    out = render(ports, Options(localhost_nodeports=False)).text
    assert "--dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS" in out
    assert not chain(out, "KUBE-FIREWALL")


def test_client_ip_affinity_uses_recent():
    ports = service_ports([svc("web", "10.0.0.20", sessionAffinity="ClientIP",
                               sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                          {"acme/default/web": eps("10.1.0.1", "10.1.0.2")})
    out = render(ports, Options()).text
    svc_chain = chain(out, "KUBE-SERVICES")[0].split("-j ")[-1]
    rules = chain(out, svc_chain)
    assert len(rules) == 4 and all("--rcheck --seconds 60 --reap" in r for r in rules[:2])
    sep = rules[0].split("-j ")[-1]
    assert f"-m recent --name {sep} --set -j DNAT --to-destination 10.1.0.1:8080" in chain(out, sep)[-1]


def test_named_ports_pick_their_own_endpoint_ports():
    service = svc("web", "10.0.0.20", {"name": "http", "port": 80, "protocol": "TCP"},
                  {"name": "admin", "port": 81, "protocol": "TCP"})
    endpoints = {"subsets": [{"addresses": [{"ip": "10.1.0.1"}], "ports": [
        {"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9090, "protocol": "TCP"}]}]}
    ports = {p.port_name: p for p in service_ports([service], {"acme/default/web": endpoints})}
    assert ports["http"].endpoints == (("10.1.0.1", 8080),) and ports["admin"].endpoints == (("10.1.0.1", 9090),)
    assert ports["http"].key == "acme/default/web:http"


def test_tenants_are_kept_apart():
    # Same namespace and name in two tenants: each Service gets its own tenant's Endpoints only.
    services = [svc("web", "10.0.0.20", tenant="acme"), svc("web", "10.0.0.21", tenant="beta")]
    ports = {p.tenant: p for p in service_ports(services, {"acme/default/web": eps("10.1.0.1")})}
    assert ports["acme"].endpoints == (("10.1.0.1", 8080),) and ports["beta"].endpoints == ()
    out = render(list(ports.values()), Options()).text
    assert out.count("acme/default/web cluster IP") == 1 and "beta/default/web has no endpoints" in out
    # The chains of equal names in two tenants differ.
    both = service_ports(services, {"acme/default/web": eps("10.1.0.1"), "beta/default/web": eps("10.2.0.1")})
    out = render(both, Options()).text
    assert len({r.split("-j ")[-1] for r in chain(out, "KUBE-SERVICES") if "cluster IP" in r}) == 2


def test_what_could_capture_others_traffic_is_left_out():
    services = [
        # externalIPs and load-balancer addresses: anyone's address, never proxied
        svc("ext", "10.0.0.40", externalIPs=["8.8.8.8"], type="LoadBalancer"),
        # a second claim on an IP:port someone holds (a restored backup): the older one keeps it
        svc("old", "10.0.0.50", tenant="acme", created="2024-01-01"),
        svc("new", "10.0.0.50", tenant="beta", created="2025-01-01"),
        # no cluster IP worth a rule
        svc("headless", "None"), svc("loop", "127.0.0.1"), svc("v6", "fd00::1"),
        {"metadata": {"tenant": "acme", "namespace": "default", "name": "name"},
         "spec": {"type": "ExternalName", "externalName": "example.com"}},
    ]
    endpoints = {"acme/default/ext": {"subsets": [{"addresses": [
        {"ip": "127.0.0.1"}, {"ip": "169.254.169.254"}, {"ip": "224.0.0.1"}, {"ip": "0.0.0.0"}, {"ip": "10.1.0.7"}],
        "ports": [{"port": 2379, "protocol": "TCP"}]}]}, "acme/default/old": eps("10.1.0.1"),
        "beta/default/new": eps("10.2.0.1")}
    ports = service_ports(services, endpoints)
    assert sorted(p.key for p in ports) == ["acme/default/ext", "acme/default/old"]
    out = render(ports, Options()).text
    assert "8.8.8.8" not in out and "127.0.0.1" not in out and "169.254" not in out and "10.2.0.1" not in out
    assert "--to-destination 10.1.0.7:2379" in out


def test_stale_chains_are_deleted_in_the_same_transaction():
    ports = service_ports([svc("web", "10.0.0.20")], {"acme/default/web": eps("10.1.0.1")})
    first = render(ports, Options(prefix="T-"))
    gone = render([], Options(prefix="T-"), first.chains)
    stale = first.chains["nat"] - gone.chains["nat"]
    assert len(stale) == 2  # the SVC and SEP chains
    for name in stale:
        assert f":{name} - [0:0]" in gone.text and f"-X {name}" in gone.text
    # The fixed chains are always there (the jumps from the built-in chains point to them).
    assert {"T-SERVICES", "T-NODEPORTS", "T-POSTROUTING", "T-MARK-MASQ"} <= gone.chains["nat"]
    assert {"T-SERVICES", "T-EXTERNAL-SERVICES", "T-FORWARD", "T-FIREWALL"} == gone.chains["filter"]


def test_masquerade_all_and_cluster_cidr():
    ports = service_ports([svc("web", "10.0.0.20")], {"acme/default/web": eps("10.1.0.1")})
    out = render(ports, Options(masquerade_all=True, masquerade_bit=3)).text
    svc_chain = chain(out, "KUBE-SERVICES")[0].split("-j ")[-1]
    assert chain(out, svc_chain)[0].endswith("-d 10.0.0.20/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ")
    assert "-j MARK --or-mark 0x8" in out and "-m mark ! --mark 0x8/0x8 -j RETURN" in out
    out = render(ports, Options(cluster_cidr="10.88.0.0/16")).text
    assert "! -s 10.88.0.0/16 -d 10.0.0.20/32" in out


def test_chain_names_fit_iptables_and_prefixes_are_checked():
    ports = service_ports([svc("a" * 60, "10.0.0.20")], {f"acme/default/{'a' * 60}": eps("10.1.0.1")})
    out = render(ports, Options(prefix="ABCDEFGHIJ-")).text
    assert all(len(line.split()[0][1:]) <= 28 for line in out.splitlines() if line.startswith(":"))
    with pytest.raises(ValueError):
        render(ports, Options(prefix="ABCDEFGHIJK-"))
    assert all(spec.endswith(("-j KUBE-SERVICES", "-j KUBE-POSTROUTING", "-j KUBE-EXTERNAL-SERVICES",
                              "-j KUBE-FORWARD", "-j KUBE-FIREWALL")) for _, _, spec in jump_rules("KUBE-"))
