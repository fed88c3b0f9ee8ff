"""The time windows probed reports over, named once: every output uses these lists."""

from __future__ import annotations

from probed.config.model import MetricsSettings

Window = tuple[str, float]
"""A label ("5m") and its length in seconds."""

PERCENTILE_WINDOWS: tuple[Window, ...] = (("1m", 60.0), ("5m", 300.0), ("1h", 3600.0))
"""Exact latency quantiles over the ring's raw samples."""

LEAN_PERCENTILE_WINDOWS: tuple[Window, ...] = (("5m", 300.0),)
"""The one window of the standard metrics profile's p50 and p99."""


def exported_percentile_windows(metrics: MetricsSettings) -> tuple[Window, ...]:
    """The windows whose quantiles /metrics carries under `metrics` (none in the blackbox profile)."""
    if metrics.profile == "blackbox":
        return ()
    return PERCENTILE_WINDOWS if metrics.wants("percentiles") else LEAN_PERCENTILE_WINDOWS

SUCCESS_WINDOWS: tuple[Window, ...] = (("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), ("30d", 30 * 86400.0))
"""Attempt and failure counts per probe in the API and on the status page."""

BURN_RATE_WINDOWS: tuple[Window, ...] = (
    ("5m", 300.0), ("30m", 1800.0), ("1h", 3600.0), ("2h", 7200.0), ("6h", 21600.0),
    ("1d", 86400.0), ("3d", 3 * 86400.0),
)
"""The SLI and burn-rate windows of multi-window multi-burn-rate alerting (SRE Workbook)."""
