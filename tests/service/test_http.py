"""The HTTP endpoint and the metrics in-process: health states, an unreachable database."""

from __future__ import annotations

import json
import shutil

import pytest

from daemon import logs
from daemon.config import DaemonConfig, LibraryConfig, empty_config
from daemon.service.http import HttpServer
from daemon.service.metrics import DaemonView, Metrics
from daemon.service.runner import Runner
from daemon.store import Store
from daemon.store.changes import Page
from tests.service.httpclient import http_request


def unreachable_sqlite(tmp_path, make):
    """`make(url)` on a database whose directory then goes: new connections fail."""
    directory = tmp_path / "gone"
    made = make(f"sqlite:///{directory}/index.db")
    shutil.rmtree(directory)
    return made


def get(server: HttpServer, path: str, method: str = "GET") -> tuple[int, str]:
    return http_request(server.address, method, path)


@pytest.fixture
def serve():
    servers: list[HttpServer] = []

    def start(metrics: Metrics, health, read_changes=lambda since, library, limit: Page([])
              ) -> HttpServer:
        server = HttpServer("127.0.0.1:0", metrics.registry, health, read_changes,
                            on_exit=lambda: None)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_runner(db_url: str, tmp_path) -> Runner:
    config = empty_config(db_url)
    library = LibraryConfig("photos", str(tmp_path))
    config = type(config)(source="<test>", daemon=config.daemon, libraries=(library,))
    return Runner(Store(db_url), config, reload_config=lambda: config)


def test_health_is_starting_then_ok(sqlite_url, tmp_path, serve):
    runner = make_runner(sqlite_url, tmp_path)
    try:
        server = serve(runner.metrics, runner._health)
        status, body = get(server, "/health")
        assert (status, json.loads(body)["status"]) == (503, "starting")
        runner._ready = True
        status, body = get(server, "/health")
        assert status == 200
        assert json.loads(body) == {"status": "ok", "database": "ok",
                                    "libraries": {"photos": "offline"}}  # not probed yet
        assert get(server, "/health", "HEAD")[0] == 405
        assert get(server, "/metrics", "PUT")[0] == 405
    finally:
        runner.inbox.close()
        runner.store.close()


def test_health_is_degraded_while_the_database_is_unreachable(tmp_path, serve):
    runner = unreachable_sqlite(tmp_path, lambda url: make_runner(url, tmp_path))
    runner._ready = True
    try:
        status, body = get(serve(runner.metrics, runner._health), "/health")
        assert status == 503
        assert json.loads(body)["status"] == "degraded"
        assert json.loads(body)["database"] == "unreachable"
    finally:
        runner.inbox.close()


def test_metrics_without_a_database_say_so(tmp_path):
    metrics = Metrics()
    view = DaemonView(libraries=lambda: ["photos"], online=lambda name: False,
                      inotify_watches=dict, last_tick_s=lambda: None)
    store = unreachable_sqlite(tmp_path, Store)
    store.close()  # the next query connects again, and cannot
    metrics.start(store, view, ["photos"])
    try:
        assert metrics.registry.get_sample_value("assetd_database_up") == 0
        assert metrics.registry.get_sample_value(
            "assetd_files", {"library": "photos", "state": "new"}) is None
        assert metrics.registry.get_sample_value(
            "assetd_library_online", {"library": "photos"}) == 0
    finally:
        metrics.stop()


def test_contract_warnings_are_counted(store):
    logs.configure(level="info", fmt="json")
    metrics = Metrics()
    view = DaemonView(libraries=list, online=lambda name: True, inotify_watches=dict,
                      last_tick_s=lambda: None)
    metrics.start(store, view, ["photos"])
    try:
        log = logs.get_logger()
        log.warning(logs.WATCH_OVERFLOW, library="photos")
        log.warning(logs.ENRICH_FAILED, enricher="image", path="a.jpg")
        log.warning(logs.ENRICH_FAILED, enricher="image", count=4)
        # The run's summary counts the failures past the few it logged one by one.
        log.info(logs.ENRICH_FINISHED, ran={"image": 9}, failed={"image": 7},
                 failures_not_logged={"image": 2})
        log.warning(logs.VERIFY_MISMATCH, library="photos", path="a.jpg")
        value = metrics.registry.get_sample_value
        assert value("assetd_watch_overflows_total", {"library": "photos"}) == 1
        assert value("assetd_enrich_failures_total", {"enricher": "image"}) == 7
        assert value("assetd_verify_mismatches_total", {"library": "photos"}) == 1
    finally:
        metrics.stop()
    logs.get_logger().warning(logs.WATCH_OVERFLOW, library="photos")
    assert metrics.registry.get_sample_value(
        "assetd_watch_overflows_total", {"library": "photos"}) == 1, "stopped: not counted"


def test_config_defaults_keep_http_off():
    assert DaemonConfig(database="sqlite:////x.db", host="h").listen == ""


def test_changes_parameters_are_checked_with_the_cli_rules(sqlite_url, tmp_path, serve):
    """`since` is a change id as `changes --since` reads it (one parser); a bad parameter is a
    400 whose one line names it, and the feed is not read."""
    asked = []
    runner = make_runner(sqlite_url, tmp_path)
    try:
        server = serve(runner.metrics, runner._health,
                       lambda since, library, limit: asked.append((since, limit)) or Page([]))
        assert get(server, "/changes?since=-1") == (400, "since: a change id is 0 or more\n")
        assert get(server, "/changes?since=x") == (400, "since: not a change id: 'x'\n")
        assert get(server, "/changes?limit=0") == (
            400, "limit: must be at least 1 and at most 10000\n")
        assert asked == []
        assert get(server, "/changes?since=7&limit=3") == (200, "")
        assert asked == [(7, 3)]
    finally:
        runner.inbox.close()
        runner.store.close()
