"""`arktos proxy`: the service proxy (kube-proxy's iptables mode) that makes ClusterIPs and node ports reach pods."""
