"""A pod's resolver configuration from its dnsPolicy and dnsConfig, as kubelet's dns.Configurer makes it.

`pod_dns_config` gives the CRI DNSConfig (servers, searches, options) a sandbox
gets, or None for "the host's own /etc/resolv.conf" (what containerd writes when
a sandbox has no DNS configuration):

* ClusterFirst (the default): the cluster DNS (`--cluster-dns`), the tenant's
  search path (`<ns>.svc.<tenant>.<domain> svc.<tenant>.<domain> <tenant>.<domain>`,
  see arktos.dns) then the host's search domains, `ndots:5`.  Pods on the
  host's network, and every pod when no cluster DNS is configured, get the
  host's resolver instead (kubelet's fallback).
* ClusterFirstWithHostNet: the cluster DNS even on the host's network.
* Default: the host's resolv.conf (kubelet's --resolv-conf).
* None: only what `dnsConfig` says.

`dnsConfig` is then merged in: its nameservers and searches appended without
duplicates, its options overriding those of the same name.  At most 3
servers and 32 search domains are kept, as kubelet does.
"""

from __future__ import annotations

from typing import Any

from arktos.api.tenancy import dns_search_domains

__all__ = ["HostResolv", "pod_dns_config", "read_resolv_conf"]

Obj = dict[str, Any]
MAX_SERVERS = 3
MAX_SEARCHES = 32
HostResolv = tuple[list[str], list[str], list[str]]  # servers, searches, options


def read_resolv_conf(path: str) -> HostResolv:
    """The nameserver, search (or domain) and options lines of a resolv.conf; empty lists if unreadable."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return servers, searches, options
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = [s.rstrip(".") for s in fields[1:] if s.rstrip(".")]  # the last line wins, as in libc
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def _unique(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def _merge_options(base: list[str], extra: list[Obj]) -> list[str]:
    merged: dict[str, str] = {}
    for opt in base:
        merged[opt.partition(":")[0]] = opt
    for opt in extra:
        name = (opt or {}).get("name") or ""
        if not name:
            continue
        value = (opt or {}).get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def pod_dns_config(pod: Obj, cluster_dns: list[str], cluster_domain: str, host: HostResolv) -> Obj | None:
    """The CRI DNSConfig of `pod`'s sandbox, or None for the host's resolv.conf as it is."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    extra = spec.get("dnsConfig") or {}
    if policy == "None":
        servers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
    elif cluster_dns and (policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)):
        servers = list(cluster_dns)
        searches = dns_search_domains(meta.get("namespace") or "default", meta.get("tenant") or "",
                                      cluster_domain) + list(host[1])
        options = ["ndots:5"]
    else:  # Default, ClusterFirst on the host's network, or no cluster DNS to point at
        if not extra:
            return None
        servers, searches, options = list(host[0]), list(host[1]), list(host[2])
    servers = _unique(servers + [str(s) for s in extra.get("nameservers") or []])[:MAX_SERVERS]
    searches = _unique(searches + [str(s).rstrip(".") for s in extra.get("searches") or []])[:MAX_SEARCHES]
    options = _merge_options(options, list(extra.get("options") or []))
    if not (servers or searches or options):
        return None
    return {"servers": servers, "searches": searches, "options": options}
