"""The test CA and a healthy certificate under it, minted once per test module.

These shadow tests/peers/http.py's session-wide `pki` (another class, for the HTTP peers) in this
directory only.
"""

from __future__ import annotations

import pytest

from tests.peers.tls import DAY, Pki, ServerCert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def good(pki: Pki) -> ServerCert:
    return pki.leaf_expiring_in(90 * DAY, "localhost")
