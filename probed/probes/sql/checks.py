"""Turning what a SQL server returned into values, facts and problems: the query's rows, the
server's identity, and its own state (connections, long-running queries, role)."""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from probed.probes import MetricAlias
from probed.probes.sql.attempt import Attempt
from probed.probes.sql.config import SqlProbeConfig
from probed.redact import excerpt
from probed.result import Reason

SQL_ALIASES: Mapping[str, MetricAlias] = {
    "connections_used_ratio": MetricAlias(
        "probed_db_connections_used_ratio",
        "Connections in use over the connections the server allows applications (from the last attempt)."),
    "long_running_queries": MetricAlias(
        "probed_db_long_running_queries",
        "Queries running for longer than the probe's long_running_after (from the last attempt)."),
}
SERVER_INFO = "probed_db_server_info"
"""Info metric for SQL servers: labels version and flavor (postgresql, mariadb, mysql)."""
FLAVOR_NAMES: Mapping[str, str] = {"postgresql": "PostgreSQL", "mariadb": "MariaDB", "mysql": "MySQL"}


def text_of(value: object) -> str:
    """How expect_value compares a column: SQL-ish text, not Python reprs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def number_of(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    return None


def check_rows(attempt: Attempt, cfg: SqlProbeConfig, rows: Sequence[Sequence[object]]) -> None:
    """Record the query's shape (rows, first value) and compare it with the expectations."""
    attempt.values["query_rows"] = float(len(rows))
    attempt.facts["rows"] = len(rows)
    first = rows[0][0] if rows and len(rows[0]) else None
    if rows and len(rows[0]):
        attempt.facts["first_value"] = excerpt(text_of(first), attempt.secrets, 200)
        number = number_of(first)
        if number is not None:
            attempt.values["query_value"] = number
    if cfg.expect_rows is not None and len(rows) != cfg.expect_rows:
        attempt.problems.append((Reason.UNEXPECTED_RESULT,
                                 f"query returned {len(rows)} row(s), expected {cfg.expect_rows}"))
    if cfg.expect_value is not None:
        if not rows or not len(rows[0]):
            attempt.problems.append((Reason.UNEXPECTED_RESULT,
                                     f"query returned no value, expected {cfg.expect_value!r}"))
        elif text_of(first) != cfg.expect_value:
            got = text_of(first)
            attempt.problems.append((Reason.UNEXPECTED_RESULT, f"first value is "
                                     f"{excerpt(repr(got), attempt.secrets, 80)}, expected {cfg.expect_value!r}"))


def record_sql_server(attempt: Attempt, flavor: str, version: str, tls: bool) -> None:
    attempt.server(SERVER_INFO, {"version": version, "flavor": flavor},
                   server_version=version, flavor=FLAVOR_NAMES[flavor], tls=tls)


@dataclass(frozen=True)
class ServerState:
    """What a SQL server says about itself, read in one round trip after the query."""

    connections_used: int
    connections_max: int
    long_running: int
    is_replica: bool


def check_server_state(attempt: Attempt, cfg: SqlProbeConfig, state: ServerState) -> None:
    used, usable = state.connections_used, state.connections_max
    attempt.values["connections_used"] = float(used)
    attempt.values["connections_max"] = float(usable)
    ratio = used / usable if usable > 0 else 1.0
    attempt.values["connections_used_ratio"] = ratio
    attempt.values["long_running_queries"] = float(state.long_running)
    attempt.values["is_replica"] = 1.0 if state.is_replica else 0.0
    role = "replica" if state.is_replica else "primary"
    attempt.facts.update(role=role, connections={"used": used, "max": usable},
                         long_running_queries=state.long_running)
    if cfg.expect_role is not None and role != cfg.expect_role:
        attempt.problems.append((Reason.WRONG_ROLE, f"server is a {role}, expected a {cfg.expect_role}"))
    if cfg.check_connections and ratio > cfg.max_connections_ratio:
        attempt.problems.append((Reason.TOO_MANY_CONNECTIONS,
                                 f"{used} of {usable} connections in use ({ratio:.0%} > "
                                 f"{cfg.max_connections_ratio:.0%})"))
    if cfg.max_long_running_queries is not None and state.long_running > cfg.max_long_running_queries:
        attempt.problems.append((Reason.LONG_RUNNING_QUERIES,
                                 f"{state.long_running} queries running longer than {cfg.long_running_after:g}s "
                                 f"(max {cfg.max_long_running_queries})"))
