"""Test-only: refuse every network connection of this Python process and record the attempt.

Put this folder first on ``PYTHONPATH`` of a subprocess. Connecting a socket (other than a local
Unix socket) or resolving a host name raises ``OSError`` and appends the destination to the file
named by ``$LDCE_NETWORK_LOG``, so that a test can fail even when the caller swallowed the error.
"""

from __future__ import annotations

import os
import socket

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _refuse(what: object) -> OSError:
    log = os.environ.get("LDCE_NETWORK_LOG")
    if log:
        with open(log, "a") as stream:
            stream.write(f"{what}\n")
    return OSError(f"network access is disabled in this test process (attempted: {what})")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    raise _refuse(address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family == socket.AF_UNIX:
        return _connect_ex(self, address)
    raise _refuse(address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
    raise _refuse(host)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
