"""The series every Prometheus exporter has: process, GC and platform, from prometheus_client.

`process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`,
`process_start_time_seconds`, `python_gc_*` and `python_info` come from prometheus_client's own
collectors, kept in a registry of our own (never the global one), rendered once per scrape after
probed's families. They are a handful of series whatever the config, so they need none of the
hand-rendering the probe families get. `catalog.CLIENT_FAMILIES` lists them (tests compare a real
scrape with it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest

_REGISTRY = CollectorRegistry(auto_describe=False)
ProcessCollector(registry=_REGISTRY)
GCCollector(registry=_REGISTRY)
PlatformCollector(registry=_REGISTRY)


def render() -> bytes:
    """The process, GC and platform families in the text exposition format."""
    return generate_latest(_REGISTRY)
