"""The opt-in HTTP endpoint (`[daemon] listen`): GET /metrics, /health and /changes, nothing else.

One thread serves one request at a time: a scrape every few seconds needs no more, and one
thread means one read-only database connection (peewee keeps one per thread). Other methods
are answered 405, other paths 404; nothing here writes to the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from daemon import logs
from daemon.config import UNIX_LISTEN_PREFIX
from daemon.jsonlines import json_line
from daemon.store.changes import Page, parse_change_id

# A client that stops sending mid-request cannot hold the only serving thread for long.
REQUEST_TIMEOUT_S = 10.0

# /changes: at most this many changes per response (`limit` defaults to the same); a consumer
# pages with `since` = the last id it got.
CHANGES_MAX_LIMIT = 10_000

Health = Callable[[], tuple[int, dict[str, Any]]]
ReadChanges = Callable[[int, str | None, int], Page]  # (since, library, limit)


class _TcpServer(HTTPServer):
    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)


class _UnixServer(HTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        # A socket left by a daemon that died: no one is listening on it any more (the
        # one-daemon-per-host lock already ruled out a live one).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.server_address)
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "localhost", 0


class HttpServer:
    def __init__(self, listen: str, registry: CollectorRegistry, health: Health,
                 read_changes: ReadChanges, on_exit: Callable[[], None]):
        handler = type("Handler", (_Handler,), {"registry": registry, "health": health,
                                                "read_changes": read_changes})
        if listen.startswith(UNIX_LISTEN_PREFIX):
            self._unix_path = listen[len(UNIX_LISTEN_PREFIX):]
            self._server: HTTPServer = _UnixServer(self._unix_path, handler)
            self.address = listen
        else:
            self._unix_path = None
            host, port = listen.rsplit(":", 1)
            self._server = _TcpServer(host.strip("[]"), int(port), handler)
            bound_host, bound_port = self._server.server_address[:2]
            self.address = f"{bound_host}:{bound_port}"
        self._on_exit = on_exit
        self._thread = threading.Thread(target=self._serve, name="assetd-http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        logs.get_logger().info("http.listening", address=self.address)

    def _serve(self) -> None:
        try:
            self._server.serve_forever(poll_interval=0.5)
        finally:
            self._on_exit()  # e.g. this thread's database connection

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        if self._unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._unix_path)


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: Health
    read_changes: ReadChanges
    timeout = REQUEST_TIMEOUT_S

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        elif path == "/health":
            status, body = type(self).health()
            self._send(status, "application/json", json.dumps(body).encode() + b"\n")
        elif path == "/changes":
            self._changes(query)
        else:
            self._send(404, "text/plain; charset=utf-8",
                       b"not found: /metrics, /health, /changes\n")

    def _changes(self, query: str) -> None:
        """`/changes?since=ID&limit=N&library=L`: JSON Lines, as `assetd changes --json`."""
        try:
            params = {key: values[-1] for key, values in parse_qs(query).items()}
            since = _since(params.get("since", "0"))
            limit = _limit(params.get("limit", str(CHANGES_MAX_LIMIT)))
        except ValueError as exc:
            self._send(400, "text/plain; charset=utf-8", f"{exc}\n".encode())
            return
        page = type(self).read_changes(since, params.get("library"), limit)
        lines = [json_line(row.as_json()) for row in page.rows]
        if page.reset_oldest_id is not None:
            lines.insert(0, json_line({"kind": "reset", "oldest_id": page.reset_oldest_id}))
        body = "".join(line + "\n" for line in lines).encode()
        self._send(200, "application/x-ndjson", body)

    def __getattr__(self, name: str) -> Any:
        """Every other method (POST, PUT, DELETE, HEAD ...): 405."""
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"method not allowed: GET only\n",
                   extra={"Allow": "GET"})

    def _send(self, status: int, content_type: str, body: bytes,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logs.get_logger().debug("http.request", request=self.requestline,
                                message=format % args)


def _since(text: str) -> int:
    try:
        return parse_change_id(text)
    except ValueError as exc:
        raise ValueError(f"since: {exc}") from None


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"limit: not an integer: {text!r}") from None
    if not 1 <= value <= CHANGES_MAX_LIMIT:
        raise ValueError(f"limit: must be at least 1 and at most {CHANGES_MAX_LIMIT}")
    return value
