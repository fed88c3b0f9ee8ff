"""What the postgres, mysql and redis probes share: target URLs (url.py), password sources
(credentials.py), TLS modes (tls.py), the SQL section (config.py), the attempt and its frame
(attempt.py), the checks on what a server returned (checks.py), and the registry entry and
`probed once` lines of a SQL type (here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from probed.probes import ProbeKind
from probed.probes.sql.checks import SERVER_INFO, SQL_ALIASES
from probed.probes.sql.config import SqlProbeConfig
from probed.probes.sql.credentials import check_password_sources
from probed.probes.sql.tls import check_tls_sources
from probed.probes.sql.url import parse_db_url
from probed.result import ProbeResult

if TYPE_CHECKING:
    from probed.config.model import ProbeSpec
    from probed.probes import Probe, ProbeContext

SQL_VALUES = ("query_rows", "query_value", "connections_used", "connections_max", "is_replica")
"""Values of SQL results exported only as probed_probe_value (the rest have dedicated metrics)."""
SQL_INFOS = {SERVER_INFO: "The server's version and flavor (postgresql, mariadb, mysql) (value 1)."}


def sql_kind(name: str, config_cls: type[SqlProbeConfig], factory: Callable[[ProbeSpec, ProbeContext], Probe],
             schemes: tuple[str, ...], default_port: int, phases: tuple[str, ...]) -> ProbeKind:
    """The registry entry of a SQL probe type: the target checks, metric names and `probed once` lines."""

    def validate_target(target: str, settings: SqlProbeConfig | None) -> None:
        url = parse_db_url(target, schemes, default_port)
        if not url.user:
            raise ValueError(f"the URL names no user ({schemes[0]}://user@host:{default_port}/database)")
        if settings is not None:
            check_password_sources(url, settings)
            check_tls_sources(url, settings.sslmode, settings.sslrootcert)

    return ProbeKind(name=name, config_cls=config_cls, factory=factory, validate_target=validate_target,
                     aliases=SQL_ALIASES, describe=describe_sql, phases=phases,
                     values=SQL_VALUES, infos=SQL_INFOS)



def describe_sql(result: ProbeResult) -> list[str]:
    """Extra lines for `probed once` from a SQL probe's facts."""
    f = result.facts
    lines = []
    if "server_version" in f:
        role = f" ({f['role']})" if "role" in f else ""
        lines.append(f"server: {f.get('flavor', '')} {f['server_version']}{role}".replace("  ", " "))
    conns = f.get("connections")
    if isinstance(conns, dict):
        lines.append(f"connections: {conns['used']} of {conns['max']} in use")
    if "long_running_queries" in f:
        lines.append(f"long-running queries: {f['long_running_queries']}")
    if "rows" in f:
        value = f" (first value {f['first_value']!r})" if "first_value" in f else ""
        lines.append(f"query: {f['rows']} row(s){value}")
    return lines
