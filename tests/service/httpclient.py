"""One HTTP request to the daemon's `listen` address: "HOST:PORT" or "unix:PATH"."""

from __future__ import annotations

import http.client
import socket


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def http_request(address: str, method: str, path: str) -> tuple[int, str]:
    """(status, body) of `method path` at `address`."""
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = UnixConnection(address[len("unix:"):])
    else:
        host, port = address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()
