"""The bundled `probes.yaml` and the environment it needs (its secrets are never inline)."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "probes.yaml"
EXAMPLE_ENV = {
    "API_TOKEN": "token-" + "t" * 12,
    "ORDERS_DB_PROBE_PASSWORD": "orders-" + "o" * 12,
    "CATALOG_DB_PROBE_PASSWORD": "catalog-" + "c" * 12,
    "JOBS_REDIS_PASSWORD": "redis-" + "r" * 12,
    "PROBED_AWS_EXTERNAL_ID": "ext-id-4f1c9a",
}
