"""The options `postgres:` and `mysql:` sections share (`SqlProbeConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from probed.config.schema import Duration, FieldError
from probed.probes.sql.credentials import PasswordOptions
from probed.probes.sql.url import SslMode

Role = Literal["primary", "replica"]


@dataclass(frozen=True)
class SqlProbeConfig(PasswordOptions):
    """Options shared by `postgres:` and `mysql:` sections."""

    sslmode: SslMode | None = None
    """Default prefer (TLS when the server offers it, unverified), as libpq and the MySQL client do.
    require with sslrootcert verifies the chain (verify-ca), as they do too."""
    sslrootcert: str | None = None
    query: str = "SELECT 1"
    expect_rows: int | None = None
    """Exact number of rows the query must return."""
    expect_value: str | None = None
    """Text the first column of the first row must equal (true/false for booleans, null for NULL)."""
    check_connections: bool = False
    max_connections_ratio: float = 0.9
    max_long_running_queries: int | None = None
    long_running_after: Duration = 30.0
    expect_role: Role | None = None
    server_side_timeout: bool = True
    """Make the server cancel a query the probe gave up on (statement timeout set at connect)."""

    def __post_init__(self) -> None:
        PasswordOptions.__post_init__(self)
        if not self.query.strip():
            raise FieldError("query", "must not be empty")
        if self.expect_rows is not None and self.expect_rows < 0:
            raise FieldError("expect_rows", "must be >= 0")
        if not 0 < self.max_connections_ratio <= 1:
            raise FieldError("max_connections_ratio", "must be in (0, 1]")
        if self.max_long_running_queries is not None and self.max_long_running_queries < 0:
            raise FieldError("max_long_running_queries", "must be >= 0")
        if self.long_running_after <= 0:
            raise FieldError("long_running_after", "must be greater than 0")

    @property
    def wants_server_state(self) -> bool:
        return self.check_connections or self.max_long_running_queries is not None or self.expect_role is not None
