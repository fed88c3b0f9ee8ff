"""Suite-wide hygiene, and the real local peers every test can ask for as fixtures.

The peers (tests/peers/) are a pytest plugin: HTTP/TCP servers with behaviour routes, TLS servers
with certificates minted in the test, a DNS server answering from a table, throwaway PostgreSQL,
MariaDB and Redis instances, a moto server for AWS, and a daemon behind its web port. Tests
import their helper classes and functions by name, never their fixtures, and never import from
another test module.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from probed import redact

pytest_plugins = ["tests.peers.http", "tests.peers.tls", "tests.peers.dns", "tests.peers.db", "tests.peers.aws",
                  "tests.peers.web"]


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # `probed run` checkpoints into a state directory by default: every test (and every daemon a
    # test starts as a subprocess) gets its own, so no test restores another's history.
    monkeypatch.setenv("PROBED_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _forget_secrets_after_each_test() -> Iterator[None]:
    # Building a probe adds its config's secrets to redact's process-wide set (which the log
    # handler masks with). One test's secret ("probe", say) must not mask words in the next.
    yield
    redact.forget_all()


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    # Unclosed transports warn (an error here: filterwarnings = error) when the collector frees
    # them. probed pauses and freezes the collector (probed/runtime/collector.py), so without this
    # the warning surfaces in whichever later test happens to trigger a collection, not in the
    # leaking one.
    yield
    gc.collect()
