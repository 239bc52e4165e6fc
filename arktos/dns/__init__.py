"""Cluster DNS (`arktos dns`): pods find Services by name, each tenant only its own.

What it answers is CoreDNS's kubernetes plugin (A/AAAA for ClusterIPs, the ready
endpoints of headless Services, `<endpoint>.<svc>...` names, SRV per named port,
PTR for ClusterIPs and endpoint IPs, CNAME for ExternalName, NXDOMAIN with the
zone's SOA for unknown names), with one change for Arktos's tenants.  ARKTOS.md
says nothing of DNS beyond the isolation promise (a tenant sees nothing of
another; only the system tenant acts across tenants), so this is our design:

* **A tenant label in the zone.**  A Service's full name is
  `<svc>.<ns>.svc.<tenant>.<zone>` (zone `cluster.local` by default).  A pod of
  tenant T gets the search path `<ns>.svc.T.<zone> svc.T.<zone> T.<zone>`
  (ndots:5, the kubelet's), so `web`, `web.other-ns` and
  `web.other-ns.svc.T.<zone>` all name T's Services, and no name can mean two
  tenants' objects at once.  The upstream Kubernetes form
  `<svc>.<ns>.svc.<zone>` (without a tenant) works too and means the *asking
  pod's* tenant, so manifests that spell out `...svc.cluster.local` keep
  working in every tenant.

* **The asker is known by its source IP.**  One server answers every tenant,
  so it watches pods (of every tenant) and maps each pod IP to its tenant.  A
  pod may resolve its own tenant's names only; another tenant's names get
  exactly what a name that does not exist gets (NXDOMAIN and the SOA), so
  nothing says whether they exist.  The system tenant's pods and the host
  itself (a source address that is one of the host's own, e.g. a hostNetwork
  process) may resolve every tenant's explicit names, as the system tenant may
  act across tenants.  A source that is neither (a pod whose IP the API does
  not show yet: the server waits up to a couple of seconds for the pod
  informer, then gives up) gets REFUSED for the cluster's names; an IP claimed
  by pods of two tenants at once (an address being reused) counts as unknown.
  This relies on pod source addresses being genuine, as NetworkPolicy does:
  the service proxy does not masquerade pod-to-ClusterIP traffic, and the host
  drops packets from pods that claim one of its own addresses.

* **Everything else is forwarded** to the host's resolvers (/etc/resolv.conf);
  when none answers, or all failed just before, the answer is SERVFAIL at once.
  Reverse names of the service range are ours alone (NXDOMAIN when unknown);
  other reverse names we cannot answer are forwarded (CoreDNS's `fallthrough`).

Not here (yet): pod A records (`1-2-3-4.ns.pod.<zone>`), wildcard queries,
EndpointSlices (Endpoints are read), DNSSEC, zone transfers.

Modules: `records` (the pure answering function over the watched state) and
`server` (informers, UDP and TCP listeners, forwarding, /health and /ready).
"""
