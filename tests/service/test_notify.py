"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.service.notify import SystemdNotifier


class FakeSystemd:
    """A bound SOCK_DGRAM socket that records what a notifier sends, as systemd would receive it."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def assert_nothing_received(self) -> None:
        self.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.sock.recv(4096)


@pytest.fixture
def path_systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    socket_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(socket_path)
        sock.settimeout(2.0)
        yield FakeSystemd(sock, socket_path)


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    name = f"assetd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        yield FakeSystemd(sock, "@" + name)


@pytest.fixture(autouse=True)
def clean_systemd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests may run under systemd themselves; never talk to the real one."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def test_ready_sends_ready(path_systemd: FakeSystemd) -> None:
    assert SystemdNotifier(path_systemd.notify_socket).ready() is True
    assert path_systemd.receive() == "READY=1"


def test_stopping_sends_stopping(path_systemd: FakeSystemd) -> None:
    assert SystemdNotifier(path_systemd.notify_socket).stopping() is True
    assert path_systemd.receive() == "STOPPING=1"


def test_watchdog_ping_sends_watchdog(path_systemd: FakeSystemd) -> None:
    assert SystemdNotifier(path_systemd.notify_socket).watchdog_ping() is True
    assert path_systemd.receive() == "WATCHDOG=1"


def test_status_sends_one_line(path_systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier(path_systemd.notify_socket)
    assert notifier.status("scanning photos: 120/4000") is True
    assert path_systemd.receive() == "STATUS=scanning photos: 120/4000"


def test_status_newline_cannot_inject_a_field(path_systemd: FakeSystemd) -> None:
    SystemdNotifier(path_systemd.notify_socket).status("a\nREADY=1")
    assert path_systemd.receive() == "STATUS=a READY=1"


def test_reloading_sends_monotonic_usec(path_systemd: FakeSystemd) -> None:
    before_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert SystemdNotifier(path_systemd.notify_socket).reloading() is True
    after_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    reloading, monotonic = path_systemd.receive().split("\n")
    assert reloading == "RELOADING=1"
    key, value = monotonic.split("=")
    assert key == "MONOTONIC_USEC"
    assert before_usec <= int(value) <= after_usec


def test_notify_joins_fields_in_order(path_systemd: FakeSystemd) -> None:
    SystemdNotifier(path_systemd.notify_socket).notify(READY=1, status="idle")
    assert path_systemd.receive() == "READY=1\nSTATUS=idle"


def test_send_passes_raw_message(path_systemd: FakeSystemd) -> None:
    SystemdNotifier(path_systemd.notify_socket).send("EXTEND_TIMEOUT_USEC=5000000")
    assert path_systemd.receive() == "EXTEND_TIMEOUT_USEC=5000000"


def test_abstract_socket(abstract_systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier(abstract_systemd.notify_socket)
    assert notifier.ready() is True
    assert abstract_systemd.receive() == "READY=1"


def test_defaults_to_notify_socket_env(
    path_systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_systemd.notify_socket)
    notifier = SystemdNotifier()
    assert notifier.enabled is True
    assert notifier.ready() is True
    assert path_systemd.receive() == "READY=1"


def test_defaults_to_abstract_notify_socket_env(
    abstract_systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", abstract_systemd.notify_socket)
    assert SystemdNotifier().stopping() is True
    assert abstract_systemd.receive() == "STOPPING=1"


def test_unset_notify_socket_is_a_no_op() -> None:
    notifier = SystemdNotifier()
    assert notifier.enabled is False
    assert notifier.ready() is False
    assert notifier.reloading() is False
    assert notifier.status("idle") is False
    assert notifier.watchdog_ping() is False
    assert notifier.stopping() is False


def test_no_listener_returns_false(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
    assert notifier.enabled is True
    assert notifier.ready() is False


def test_socket_that_is_not_a_socket_returns_false(tmp_path: Path) -> None:
    regular_file = tmp_path / "not-a-socket"
    regular_file.write_text("")
    assert SystemdNotifier(str(regular_file)).ready() is False


def test_relative_path_is_ignored(
    path_systemd: FakeSystemd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert SystemdNotifier("notify.sock").ready() is False
    path_systemd.assert_nothing_received()


def test_watchdog_unset() -> None:
    assert SystemdNotifier().watchdog_interval_s() is None


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert SystemdNotifier().watchdog_interval_s() == 30.0


def test_watchdog_for_this_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "5000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier().watchdog_interval_s() == 2.5


def test_watchdog_for_another_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "5000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert SystemdNotifier().watchdog_interval_s() is None


@pytest.mark.parametrize("watchdog_usec", ["", "0", "-5", "sixty", "1.5"])
def test_watchdog_invalid_usec(monkeypatch: pytest.MonkeyPatch, watchdog_usec: str) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", watchdog_usec)
    assert SystemdNotifier().watchdog_interval_s() is None


def test_watchdog_invalid_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "5000000")
    monkeypatch.setenv("WATCHDOG_PID", "self")
    assert SystemdNotifier().watchdog_interval_s() is None
