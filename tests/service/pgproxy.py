"""A TCP proxy in front of PostgreSQL that a test can cut and restore.

Stopping the shared server would break every other test; cutting the daemon's own path to it
is the outage the daemon sees: connections reset mid-query, new ones refused.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class PgProxy:
    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)):
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]  # kept for the proxy's whole life, up or down
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def url(self, pg_url: str) -> str:
        """`pg_url` (at 127.0.0.1:5432) through the proxy."""
        return pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}", 1)

    def up(self) -> PgProxy:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.1)
        self._listener = listener
        self._stop.clear()
        self._spawn(self._accept, listener)
        return self

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00"
                                    b"\x00\x00\x00\x00")
                    sock.close()
            self._sockets.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="pgproxy")
        thread.start()
        self._threads.append(thread)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets.update((client, server))
            self._spawn(self._pump, client, server)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(0.1):
                    try:
                        data = key.fileobj.recv(65536)
                        if not data:
                            return self._close(client, server)
                        peers[key.fileobj].sendall(data)
                    except OSError:
                        return self._close(client, server)
        return None

    def _close(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._sockets.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()
