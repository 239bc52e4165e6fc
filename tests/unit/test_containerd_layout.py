"""containerd's rendered configuration and the choice of pod subnets (no containerd process needed)."""

from __future__ import annotations

import ipaddress
import json

from arktos.cluster import containerd as ctd


def test_a_pod_subnet_overlaps_nothing_on_the_host_nor_what_is_taken():
    host = ctd.subnets_in_use()
    first = ctd.free_subnet()
    second = ctd.free_subnet((first,))
    for chosen in (first, second):
        net = ipaddress.ip_network(chosen)
        assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.88.0.0/16"))
        assert not any(net.overlaps(h) for h in host)
    assert first != second


def test_prepare_renders_containerd_and_the_bridge_and_remembers_the_subnet(tmp_path):
    layout = ctd.prepare(tmp_path / "c", "10.88.77.0/24")
    assert ctd.configured_subnet(layout) == "10.88.77.0/24"
    config = layout.config.read_text()
    assert f'address = "{layout.socket}"' in config and "restrict_oom_score_adj = true" in config
    conf = json.loads((layout.cni_conf_dir / "10-arktos.conflist").read_text())
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["bridge"] == ctd.bridge_name(layout.base)
    assert len(bridge["bridge"]) <= 15  # Linux's limit for interface names
    assert ctd.configured_subnet(ctd.ContainerdLayout(tmp_path / "never-prepared")) is None


def test_a_deep_state_directory_still_gets_a_usable_socket_path(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 6)
    layout = ctd.ContainerdLayout(deep)
    assert len(str(layout.socket)) + len(".ttrpc") < 104  # the unix socket limit containerd hit
    assert layout.socket == ctd.ContainerdLayout(deep).socket  # stable: down and status find it again
