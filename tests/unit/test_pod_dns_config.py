"""A pod's resolver configuration (the sandbox's CRI DNSConfig) from dnsPolicy and dnsConfig, as kubelet's."""

from __future__ import annotations

from arktos.agent.dns import pod_dns_config, read_resolv_conf

HOST = (["192.0.2.53"], ["corp.example"], ["timeout:2"])
DNS = ["10.0.0.10"]


def pod(policy=None, host_network=False, dns_config=None, tenant="acme", ns="shop"):
    spec = {"hostNetwork": host_network, **({"dnsPolicy": policy} if policy else {}),
            **({"dnsConfig": dns_config} if dns_config is not None else {})}
    return {"metadata": {"tenant": tenant, "namespace": ns, "name": "p"}, "spec": spec}


def test_cluster_first_points_at_the_cluster_dns_with_the_tenants_search_path():
    want = {"servers": ["10.0.0.10"],
            "searches": ["shop.svc.acme.cluster.local", "svc.acme.cluster.local", "acme.cluster.local",
                         "corp.example"],
            "options": ["ndots:5"]}
    assert pod_dns_config(pod(), DNS, "cluster.local", HOST) == want
    assert pod_dns_config(pod("ClusterFirst"), DNS, "cluster.local", HOST) == want
    # On the host's network: the host's resolver, unless ClusterFirstWithHostNet.
    assert pod_dns_config(pod(host_network=True), DNS, "cluster.local", HOST) is None
    assert pod_dns_config(pod("ClusterFirstWithHostNet", True), DNS, "cluster.local", HOST) == want
    # Without a cluster DNS configured, kubelet falls back to the host's.
    assert pod_dns_config(pod(), [], "cluster.local", HOST) is None
    # The system tenant and another domain.
    got = pod_dns_config(pod(tenant="", ns="kube-system"), DNS, "k8s.test.", ([], [], []))
    assert got["searches"] == ["kube-system.svc.system.k8s.test", "svc.system.k8s.test", "system.k8s.test"]


def test_default_none_and_merged_dns_config():
    assert pod_dns_config(pod("Default"), DNS, "cluster.local", HOST) is None  # containerd copies the host's file
    extra = {"nameservers": ["1.1.1.1", "192.0.2.53"], "searches": ["a.example."],
             "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": "timeout", "value": "5"}]}
    assert pod_dns_config(pod("Default", dns_config=extra), DNS, "cluster.local", HOST) == {
        "servers": ["192.0.2.53", "1.1.1.1"], "searches": ["corp.example", "a.example"],
        "options": ["timeout:5", "ndots:2", "edns0"]}
    assert pod_dns_config(pod("None", dns_config=extra), DNS, "cluster.local", HOST) == {
        "servers": ["1.1.1.1", "192.0.2.53"], "searches": ["a.example"], "options": ["ndots:2", "edns0", "timeout:5"]}
    got = pod_dns_config(pod(dns_config={"options": [{"name": "ndots", "value": "1"}],
                                         "nameservers": ["9.9.9.9", "8.8.8.8", "7.7.7.7"]}), DNS, "cluster.local", HOST)
    assert got["options"] == ["ndots:1"] and got["servers"] == ["10.0.0.10", "9.9.9.9", "8.8.8.8"]  # at most 3


def test_read_resolv_conf(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# comment\nnameserver 192.0.2.53\nnameserver 192.0.2.54 # two\ndomain old.example\n"
                    "search a.example b.example.\noptions ndots:2 rotate\n")
    assert read_resolv_conf(str(path)) == (["192.0.2.53", "192.0.2.54"], ["a.example", "b.example"],
                                           ["ndots:2", "rotate"])
    assert read_resolv_conf(str(tmp_path / "missing")) == ([], [], [])
