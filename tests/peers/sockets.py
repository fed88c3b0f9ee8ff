"""Which of this process's own sockets are connected to a given port.

The hostile servers run in the test process, so a count of open descriptors mixes the server's
side with the probe's. A socket the probe leaked is one whose descriptor is still open here and
whose *remote* port is the server's: the kernel's tables (/proc/net/tcp, tcp6) give each
socket's inode and ports, and /proc/self/fd says which inodes this process still holds.
"""

from __future__ import annotations

import os
from pathlib import Path

_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
               "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def _held_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed while listing (the listing's own descriptor, among others)
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    return inodes


def client_sockets_to(port: int) -> list[str]:
    """This process's open sockets whose remote end is `port`, as "local-port STATE" strings."""
    held = _held_socket_inodes()
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if int(remote.rsplit(":", 1)[1], 16) == port and inode in held:
                found.append(f"{int(local.rsplit(':', 1)[1], 16)} {_TCP_STATES.get(state, state)}")
    return found
