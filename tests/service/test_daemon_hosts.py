"""One daemon per (host, database); a daemon that died never blocks its restart."""

from __future__ import annotations

import pytest

from tests.conftest import Env
from tests.service.conftest import DAEMON_SETTINGS, query_db


@pytest.fixture
def host_env(env: Env) -> Env:
    env.daemon.update(DAEMON_SETTINGS)
    env.library("photos", {"a.jpg": "a"})
    return env


def daemon_rows(env: Env) -> list[tuple]:
    return query_db(env.db_url, "SELECT host, pid FROM daemon ORDER BY pid")


def test_a_second_daemon_for_the_host_is_refused(host_env, make_daemon):
    first = make_daemon(env=host_env).start()
    proc = host_env.cli("run", check=2, timeout=30)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"assetd: a daemon for host {host_env_host(host_env)} already runs "
                           f"against this database (pid {first.pid})"), line
    assert [pid for _, pid in daemon_rows(host_env)] == [first.pid]
    assert first.stop() == 0


def test_a_killed_daemon_does_not_block_its_restart(host_env, make_daemon):
    first = make_daemon(env=host_env).start()
    first.kill()
    assert [pid for _, pid in daemon_rows(host_env)] == [first.pid]  # its row stayed
    second = make_daemon(env=host_env).start()
    assert [pid for _, pid in daemon_rows(host_env)] == [second.pid]  # and is gone now
    assert second.stop() == 0


def host_env_host(env: Env) -> str:
    return env.json("status")["libraries"][0]["host"]
