"""The `postgres:` section's errors, the password outside the settings' repr, the metric aliases, and the
test harness itself: missing server binaries skip locally and fail under CI."""

from __future__ import annotations

import pytest

from probed.config.schema import ConfigError
from probed.probes import get_kind
from probed.runtime.probeset import parse_config
from tests.peers.db import ServerUnavailable, unavailable

pytestmark = pytest.mark.database


# --------------------------------------------------------------------------- the test harness itself


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)],
                         ids=["local-skips", "ci-fails"])
def test_missing_server_binaries_skip_locally_and_fail_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str,
                                                                outcome: type[BaseException]) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as raised:  # skip and fail are BaseExceptions: catch either, then compare
        unavailable(ServerUnavailable("PostgreSQL server binaries not found; apt-get install postgresql"))
    assert raised.type is outcome
    assert "apt-get install postgresql" in str(raised.value)


# --------------------------------------------------------------------------- configuration (no server)


@pytest.mark.parametrize(("target", "section", "message"), [
    ("http://db/app", "", "probes[0].target: expected a postgres:// or postgresql:// URL, got 'http'"),
    ("postgres://db/app", "", "probes[0].target: the URL names no user"),
    ("postgres://app@db/app?sslmode=maybe", "", "probes[0].target: invalid sslmode 'maybe'"),
    ("postgres://app@db/app?connect_timeout=3", "", "unknown URL parameter 'connect_timeout'"),
    ("postgres://app@db:99999/app", "", "probes[0].target: invalid URL: Port out of range"),
    ("postgres://app:pw@db/app", "{password_env: X}", "the URL has a password and the section sets one too"),
    ("postgres://app@db/app?sslmode=require", "{sslmode: verify-full}", "sslmode is set both in the URL"),
    ("postgres://app@db/app", "{password_env: X, password_file: /f}", "probes[0].postgres.password_file: set only one"),
    ("postgres://app@db/app", "{max_connections_ratio: 1.5}", "max_connections_ratio: must be in (0, 1]"),
    ("postgres://app@db/app", "{expect_role: leader}", "invalid value 'leader' (one of: primary, replica)"),
    ("postgres://app@db/app", "{long_running_after: 30}", "long_running_after: invalid duration 30"),
    ("postgres://app@db/app", "{querry: SELECT 2}", "unknown key 'querry' (did you mean 'query'?)"),
], ids=["scheme", "no-user", "sslmode", "url-param", "port", "two-passwords", "two-sslmodes", "two-sources",
        "ratio", "role", "duration", "typo"])
def test_config_errors_name_the_problem(target: str, section: str, message: str) -> None:
    text = f"probes:\n  - name: db\n    type: postgres\n    target: {target}\n"
    if section:
        text += f"    postgres: {section}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "probes.yaml", {})
    assert message in str(info.value)


def test_password_stays_out_of_the_settings_repr() -> None:
    config = parse_config("probes:\n  - name: db\n    type: postgres\n    target: postgres://app@db/app\n"
                          "    postgres: {password: '${PGPW}'}\n", "probes.yaml", {"PGPW": "hunter2-secret"})
    assert "hunter2-secret" not in repr(config.probes[0])
    assert "hunter2-secret" in config.secrets


def test_aliases_give_dashboards_dedicated_metric_names() -> None:
    aliases = get_kind("postgres").aliases
    assert aliases["connections_used_ratio"].metric == "probed_db_connections_used_ratio"
    assert aliases["long_running_queries"].metric == "probed_db_long_running_queries"
