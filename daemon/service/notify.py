"""sd_notify(3) without libsystemd: tell systemd how the daemon is doing.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET``. A name starting with ``@`` is in the abstract namespace, where the
kernel expects a leading NUL byte instead. The unit runs ``Type=notify``, so systemd waits for
``READY=1`` before it calls the service started, and ``WatchdogSec=`` restarts a daemon whose
``WATCHDOG=1`` pings stop.

Outside systemd (a terminal, the tests, a container) ``$NOTIFY_SOCKET`` is unset and every call is
a no-op, so callers never need to ask whether they run under systemd. A notification is advisory:
failing to deliver one must never take the daemon down, so errors are returned, not raised.
"""

from __future__ import annotations

import os
import socket
import time

# systemd answers from PID 1's event loop; if its socket buffer is full, give up rather than hang
# the caller (the shutdown path sends STOPPING=1 and must stay within TimeoutStopSec).
SEND_TIMEOUT_S = 5.0


class SystemdNotifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` (or to ``socket_path`` when given).

    A fresh socket per message keeps this object stateless and safe to share between the main
    loop and the watchdog thread: no descriptor to close, reopen or lock.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        if socket_path is None:
            socket_path = os.environ.get("NOTIFY_SOCKET", "")
        self.socket_path = socket_path

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to talk to (i.e. we were started by systemd)."""
        return bool(self.socket_path)

    def send(self, message: str) -> bool:
        """Send one raw message; True when it was delivered, False when disabled or on error."""
        address = _socket_address(self.socket_path)
        if address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sock.sendto(message.encode("utf-8", "backslashreplace"), address)
        except OSError:
            return False
        return True

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines, one per keyword argument: ``notify(READY=1, STATUS="...")``.

        A newline inside a value would start a new (bogus) assignment, so it becomes a space.
        """
        lines = [f"{key.upper()}={_one_line(value)}" for key, value in fields.items()]
        return self.send("\n".join(lines))

    def ready(self) -> bool:
        """Startup (or a reload) is complete: systemd marks the unit active."""
        return self.send("READY=1")

    def reloading(self) -> bool:
        """A reload began; ``ready()`` ends it.

        systemd v253+ matches MONOTONIC_USEC against the time ``systemctl reload`` started, so
        a stale RELOADING=1 cannot end a newer reload early; older versions ignore the field.
        """
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> bool:
        """Shutdown began, so systemd shows "deactivating" instead of a crash."""
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        """The one-line status that ``systemctl status assetd`` shows."""
        return self.notify(STATUS=text)

    def watchdog_ping(self) -> bool:
        """Prove liveness; missing pings for ``WatchdogSec`` makes systemd restart the service."""
        return self.send("WATCHDOG=1")

    def watchdog_interval_s(self) -> float | None:
        """How often to ping the watchdog, or None when no watchdog is configured for us.

        Half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises, so one late ping does not
        trigger a restart. ``$WATCHDOG_PID`` names the process the watchdog is meant for; a child
        that inherited the environment must not ping on its parent's behalf.
        """
        try:
            watchdog_usec = int(os.environ.get("WATCHDOG_USEC", ""))
            watchdog_pid = int(os.environ.get("WATCHDOG_PID") or os.getpid())
        except ValueError:
            return None
        if watchdog_pid != os.getpid():
            return None
        if watchdog_usec <= 0:
            return None
        return watchdog_usec / 1_000_000 / 2


def _socket_address(socket_path: str) -> str | None:
    """The address to pass to ``sendto``, or None when there is nothing valid to send to."""
    if socket_path.startswith("@"):
        return "\0" + socket_path[1:]
    if socket_path.startswith("/"):
        return socket_path
    # Unset, or a kind sd_notify(3) does not define for us (relative path, vsock:...).
    return None


def _one_line(value: object) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")
