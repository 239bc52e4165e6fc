"""The one way components talk to an API server.

    from arktos.client import Client, Informer, load_kubeconfig

    async with Client(load_kubeconfig(path), component="scheduler") as client:
        pod = await client.get(PODS, "p", namespace="default")

`Client` is the REST client (tenant-aware paths, paging, watches, errors as
`APIError`, rate limiting and safe retries); `Informer` keeps a local copy of
a set of objects from one or many servers; `LeaderElector` and
`EventRecorder` are what singleton components and controllers need besides.
Everything else in this package is private.
"""

from arktos.api.errors import APIError
from arktos.client._watch import TransportError, Watch, WatchEvent
from arktos.client.events import EventRecorder
from arktos.client.informer import (
    Informer,
    diff,
    namespace_index,
    node_name_index,
    object_key,
    owner_uid_index,
)
from arktos.client.kubeconfig import ClusterConfig, KubeconfigError, load_kubeconfig, load_many
from arktos.client.leader import LeaderElector, LeadershipLost
from arktos.client.rest import ALL_TENANTS, Client

__all__ = [
    "ALL_TENANTS",
    "APIError",
    "Client",
    "ClusterConfig",
    "EventRecorder",
    "Informer",
    "KubeconfigError",
    "LeaderElector",
    "LeadershipLost",
    "TransportError",
    "Watch",
    "WatchEvent",
    "diff",
    "load_kubeconfig",
    "load_many",
    "namespace_index",
    "node_name_index",
    "object_key",
    "owner_uid_index",
]
