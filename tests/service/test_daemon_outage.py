"""Database outages are survived: the daemon waits, keeps watching, and catches up.

A proxy the test controls stands between the daemon and PostgreSQL (pgproxy.py).
"""

from __future__ import annotations

import signal

import pytest

from tests.conftest import Env, new_pg_schema_url
from tests.service.conftest import DAEMON_SETTINGS, Index, write
from tests.service.pgproxy import PgProxy


@pytest.fixture
def proxy():
    proxy = PgProxy()
    yield proxy
    proxy.down()


@pytest.fixture
def outage_env(tmp_path, pg_database, proxy) -> Env:
    env = Env(tmp_path, proxy.url(new_pg_schema_url(pg_database)))
    env.daemon.update(DAEMON_SETTINGS)
    env.library("photos", {"before.jpg": "before"})
    return env


def test_a_database_down_at_start_is_waited_for(outage_env, proxy, make_daemon):
    daemon = make_daemon(env=outage_env).start(wait_ready=False)
    down = daemon.wait_log("database.unreachable")
    assert down["level"] == "warning"
    write(outage_env.tmp_path / "photos" / "during.jpg", "during")
    assert daemon.proc.poll() is None  # still running, not exited 2 or 3
    proxy.up()
    daemon.wait_log("database.recovered", timeout=30)
    daemon.wait_log("daemon.ready", timeout=30)
    index = Index(outage_env.db_url)
    daemon.wait_for(lambda: index.hashed("photos/during.jpg") and index.hashed("photos/before.jpg"))
    assert len(daemon.events("database.unreachable")) == 1
    assert daemon.stop() == 0


def test_an_outage_while_running_loses_nothing(outage_env, proxy, make_daemon):
    proxy.up()
    daemon = make_daemon(env=outage_env).start()
    index = Index(outage_env.db_url)
    daemon.wait_for(lambda: index.hashed("photos/before.jpg"))

    proxy.down()
    for i in range(20):  # written while the database is away, seen by the watches
        write(outage_env.tmp_path / "photos" / "new" / f"{i}.jpg", f"n{i}")
    (outage_env.tmp_path / "photos" / "before.jpg").unlink()
    daemon.wait_log("database.unreachable", timeout=30)
    proxy.up()
    daemon.wait_log("database.recovered", timeout=60)
    daemon.wait_for(lambda: all(index.hashed(f"photos/new/{i}.jpg") for i in range(20)),
                    timeout=30)
    daemon.wait_for(lambda: index.hashed("photos/before.jpg", present=False))
    assert len(daemon.events("database.unreachable")) == 1
    assert len(daemon.events("database.recovered")) == 1
    assert daemon.stop() == 0


def test_sigterm_during_an_outage_exits_0(outage_env, proxy, make_daemon):
    proxy.up()
    daemon = make_daemon(env=outage_env).start()
    proxy.down()
    write(outage_env.tmp_path / "photos" / "x.jpg", "x")
    daemon.wait_log("database.unreachable", timeout=30)
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    daemon.wait_log("daemon.stopped")


def test_sigterm_while_waiting_at_start_exits_0(outage_env, make_daemon):
    daemon = make_daemon(env=outage_env).start(wait_ready=False)
    daemon.wait_log("database.unreachable")
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(10) == 0
    daemon.wait_log("daemon.stopped")
