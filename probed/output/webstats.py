"""What the daemon's own web port counts: connections, refusals, scrapes and renders.

Written by the connection guard (connections.py) and the routes (web.py), read by the exposition
(`probed_web_*`, `probed_scrape*`). Plain counters on the event loop's thread: no locks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

REFUSAL_CAUSES = ("host", "cross_site", "unauthorized")
"""Why a request was refused: a foreign Host on a loopback listener (DNS rebinding), a cross-site
Origin or Sec-Fetch-Site on a state-changing request, missing or wrong basic-auth credentials."""


@dataclass
class WebStats:
    connections_open: int = 0
    connections_refused_total: int = 0
    """Connections closed at accept because the web port's connection cap was reached."""
    connections_timed_out_total: int = 0
    """Connections dropped because no complete request head arrived in time."""
    scrapes_total: int = 0
    renders_total: int = 0
    """/metrics bodies rendered: fewer than scrapes when concurrent scrapers shared one."""
    requests_refused: Counter[str] = field(default_factory=Counter)
