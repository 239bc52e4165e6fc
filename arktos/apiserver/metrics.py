"""Prometheus metrics of the API server, named as kube-apiserver names them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "apiserver_request_total",
    "Requests served, by verb, resource, subresource and HTTP code.",
    ["verb", "group", "resource", "subresource", "code"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "apiserver_request_duration_seconds",
    "Time to serve a request (for watches: time to establish it), by verb and resource.",
    ["verb", "group", "resource", "subresource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
WATCHERS = Gauge(
    "apiserver_registered_watchers",
    "Open watches served from the watch cache, by resource.",
    ["group", "resource"],
    registry=REGISTRY,
)
WATCH_EVENTS = Counter(
    "apiserver_watch_events_total",
    "Watch events sent to clients, by resource.",
    ["group", "resource"],
    registry=REGISTRY,
)
WATCH_EVENT_BYTES = Counter(
    "apiserver_watch_events_sizes_bytes_total",
    "Bytes of watch events sent to clients, by resource.",
    ["group", "resource"],
    registry=REGISTRY,
)
WATCH_EVENTS_BY_CLIENT = Counter(
    "apiserver_watch_events_by_client_total",
    "Watch events sent, by resource and client (the User-Agent's product token), so the share each "
    "partitioned controller instance receives can be seen.",
    ["group", "resource", "client"],
    registry=REGISTRY,
)
CACHE_OBJECTS = Gauge(
    "apiserver_watch_cache_objects",
    "Objects held in the watch cache, by resource.",
    ["group", "resource"],
    registry=REGISTRY,
)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
