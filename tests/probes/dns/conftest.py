"""The DNS server every test here asks for: tests/peers/dns.py's server answering from the shared table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.peers.dns import DnsServer, dns_server
from tests.peers.dns_lookup import TABLE


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    async with dns_server(TABLE) as running:
        yield running
