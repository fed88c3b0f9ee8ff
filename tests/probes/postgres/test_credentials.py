"""Where a `type: postgres` password comes from, what a wrong or unreadable one reports, and that it never
shows, in results, facts or `probed once`. A real throwaway PostgreSQL (scram-sha-256)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probed.probes.postgres import PostgresProbeConfig
from probed.result import Reason
from probed.runtime.probeset import parse_config
from tests.peers.db import PG_DB, PG_PASSWORD, PG_USER, PostgresServer, attempt, build_probe
from tests.peers.postgres import pg_probe

pytestmark = pytest.mark.database


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("source", ["password_env", "password_file", "yaml_interpolation"])
async def test_password_sources(pg_server: PostgresServer, source: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    if source == "password_env":
        monkeypatch.setenv("PROBED_TEST_PG_PW", PG_PASSWORD)
        settings = "{password_env: PROBED_TEST_PG_PW}"
    elif source == "password_file":
        (tmp_path / "pw").write_text(PG_PASSWORD + "\n")  # the newline editors add is not part of it
        settings = f"{{password_file: {tmp_path / 'pw'}}}"
    else:
        settings = "{password: '${PGPW}'}"
    config = parse_config(f"probes:\n  - name: db\n    type: postgres\n    target: {pg_server.url()}\n"
                          f"    postgres: {settings}\n", "probes.yaml", {"PGPW": PG_PASSWORD})
    spec = config.probes[0]
    probe = build_probe("postgres", spec.target, spec.settings, 2.0, config.secrets)
    result = await attempt(probe)
    assert result.reason is Reason.OK, result.detail


async def test_wrong_password_is_auth_failed(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(), password="not-the-password"))
    assert result.reason is Reason.AUTH_FAILED
    assert "password authentication failed" in result.detail
    assert result.facts["sqlstate"] == "28P01"


async def test_unreadable_password_file_is_auth_failed_with_the_reason(pg_server: PostgresServer,
                                                                       tmp_path: Path) -> None:
    result = await attempt(pg_probe(pg_server.url(), password=None, password_file=str(tmp_path / "missing")))
    assert result.reason is Reason.AUTH_FAILED
    assert "password_file" in result.detail and "No such file" in result.detail


async def test_a_password_read_at_run_time_never_appears_in_the_result(pg_server: PostgresServer,
                                                                       tmp_path: Path) -> None:
    # The config never saw this password (it is read from a file), and the database name makes
    # the server echo it back: the attempt must still mask it everywhere.
    (tmp_path / "pw").write_text(PG_PASSWORD)
    probe = build_probe("postgres", pg_server.url(db=PG_PASSWORD),
                        PostgresProbeConfig(password_file=str(tmp_path / "pw")))
    result = await attempt(probe)
    assert result.reason is Reason.DATABASE_NOT_FOUND
    rendered = json.dumps([result.detail, result.facts, dict(result.info)])
    assert PG_PASSWORD not in rendered
    assert '"***"' in result.detail


async def test_a_query_answer_that_quotes_the_password_is_masked_in_the_facts(pg_server: PostgresServer,
                                                                              tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PG_PASSWORD)
    probe = build_probe("postgres", pg_server.url(),
                        PostgresProbeConfig(password_file=str(tmp_path / "pw"), query=f"SELECT 'pw={PG_PASSWORD}'",
                                            expect_value="something else"))
    result = await attempt(probe)
    assert result.reason is Reason.UNEXPECTED_RESULT
    assert result.facts["first_value"] == "pw=***"
    assert PG_PASSWORD not in result.detail


def test_probed_once_never_shows_the_password(pg_server: PostgresServer, tmp_path: Path) -> None:
    """End to end, text and JSON: the password from a file (read at run time, the config never
    sees it), from ${VAR} and inline in the URL; the first fails after authenticating."""
    (tmp_path / "pw").write_text(PG_PASSWORD + "\n")
    config = tmp_path / "probes.yaml"
    config.write_text(f"""\
defaults: {{timeout: 3s}}
probes:
  - name: file
    type: postgres
    target: {pg_server.url(db="no_such_db")}
    postgres: {{password_file: {tmp_path / "pw"}}}
  - name: interpolated
    type: postgres
    target: {pg_server.url()}
    postgres: {{password: "${{PROBED_TEST_PGPW}}", check_connections: true}}
  - name: inline
    type: postgres
    target: {pg_server.url(password=PG_PASSWORD)}
""")
    outputs = []
    for extra in ([], ["--json"]):
        # From the repository root: from tests/probes, the dns/ and http/ test packages would shadow
        # dnspython and the standard library's http.
        out = subprocess.run([sys.executable, "-m", "probed.cli", "once", "--config", str(config), *extra],
                             capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[3],
                             env={**os.environ, "PROBED_TEST_PGPW": PG_PASSWORD})
        assert out.returncode == 1, out.stderr  # the first probe fails: no such database
        outputs.append(out.stdout + out.stderr)
    text, as_json = outputs
    assert "database_not_found" in text and "connections:" in text
    rows = {row["name"]: row for row in map(json.loads, as_json.splitlines())}
    assert {name: row["reason"] for name, row in rows.items()} == {
        "file": "database_not_found", "interpolated": "ok", "inline": "ok"}
    assert rows["inline"]["target"] == f"postgres://{PG_USER}:***@127.0.0.1:{pg_server.port}/{PG_DB}"
    assert PG_PASSWORD not in text + as_json


async def test_inline_url_password_works_and_is_redacted(pg_server: PostgresServer) -> None:
    probe = build_probe("postgres", pg_server.url(password=PG_PASSWORD, db="nope"), PostgresProbeConfig())
    result = await attempt(probe)
    assert result.reason is Reason.DATABASE_NOT_FOUND  # authenticated with the URL's password
    assert PG_PASSWORD not in json.dumps([result.detail, result.facts])


async def test_unknown_database_is_database_not_found(pg_server: PostgresServer) -> None:
    result = await attempt(pg_probe(pg_server.url(db="no_such_db")))
    assert result.reason is Reason.DATABASE_NOT_FOUND
    assert 'database "no_such_db" does not exist' in result.detail
