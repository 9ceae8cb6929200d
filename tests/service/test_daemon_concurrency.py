"""The CLI against the database the running daemon writes to: never "database is locked"."""

from __future__ import annotations

import threading

from tests.service.conftest import write


def test_cli_while_the_daemon_indexes_a_burst(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", {f"seed/{i}.jpg": f"seed {i}" for i in range(100)})
    daemon = make_daemon().start()
    done = threading.Event()
    failures: list[str] = []
    runs: list[str] = []

    def loop(*commands: tuple[str, ...]) -> None:
        while not done.is_set():
            for args in commands:
                proc = daemon_env.cli(*args, check=None)
                runs.append(args[0])
                if proc.returncode != 0 or "locked" in proc.stderr:
                    failures.append(f"{' '.join(args)} → {proc.returncode}: {proc.stderr}")

    readers = threading.Thread(target=loop, args=(("files", "--json"), ("status", "--json")))
    scanner = threading.Thread(target=loop,
                               args=(("scan", "--path", str(root / "seed"), "--json"),))
    readers.start()
    scanner.start()
    try:
        for i in range(3000):
            write(root / f"burst{i % 30}" / f"{i}.jpg", f"burst {i}")
        daemon.wait_for(
            lambda: sum(1 for r in index.rows().values() if r["hash"]) == 3100, timeout=60,
            message="3,100 hashed rows")
        daemon.wait_for(lambda: runs.count("scan") >= 3 and runs.count("status") >= 3,
                        message="a few CLI runs of each kind")
    finally:
        done.set()
        readers.join()
        scanner.join()
    assert failures == []
    assert daemon.stop() == 0
