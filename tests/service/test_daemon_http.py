"""`listen`: /metrics and /health served by the real daemon, over TCP and a unix socket."""

from __future__ import annotations

import json
import os
import socket
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import DAEMON_SETTINGS, write
from tests.service.httpclient import http_request


def request(daemon, method: str, path: str) -> tuple[int, str]:
    return http_request(daemon.wait_log("http.listening")["address"], method, path)


def scrape(daemon) -> dict[str, dict[tuple, float]]:
    """Samples by name, each keyed by its sorted label pairs."""
    status, text = request(daemon, "GET", "/metrics")
    assert status == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def test_metrics_agree_with_files_json(daemon_env, index, make_daemon):
    root = daemon_env.library("photos", {"a.jpg": "a", "b.jpg": "b", "d/c.txt": "c"})
    daemon_env.library("music", {"x.flac": "x"})
    daemon_env.daemon["listen"] = "127.0.0.1:0"
    daemon_env.write_config()
    daemon = make_daemon().start()
    os.unlink(root / "b.jpg")
    daemon.wait_for(lambda: index.hashed("photos/b.jpg", present=False))
    write(root / "new.jpg", "new")
    daemon.wait_for(lambda: index.hashed("photos/new.jpg"))

    # Compared once the enrichers are done: a state that moves between the two reads
    # (new -> enriching -> ready) is not a disagreement.
    daemon.wait_for(lambda: all(f["state"] == "ready" or f["missing"]
                                for f in daemon_env.files().values()))
    files = daemon_env.files()
    metrics = scrape(daemon)
    expected = Counter(
        (f["library"], "missing" if f["missing"] else f["state"]) for f in files.values())
    for labels, value in metrics["assetd_files"].items():
        library, state = dict(labels)["library"], dict(labels)["state"]
        assert value == expected.get((library, state), 0), (library, state)
    assert sum(metrics["assetd_files"].values()) == len(files) == 5
    assert metrics["assetd_files"][(("library", "photos"), ("state", "missing"))] == 1
    assert set(metrics["assetd_library_online"].values()) == {1.0}
    assert metrics["assetd_database_up"][()] == 1
    assert metrics["assetd_build_info"][(("version", "0.1.0"),)] == 1
    assert metrics["assetd_scans_total"][(("library", "photos"), ("status", "ok"))] >= 1
    assert metrics["assetd_event_to_index_seconds_count"][()] >= 2
    assert metrics["assetd_verify_mismatches_total"][(("library", "photos"),)] == 0
    assert metrics["assetd_inotify_watches_limit"][()] > 0
    status = {lib["name"]: lib for lib in daemon_env.json("status")["libraries"]}
    assert metrics["assetd_inotify_watches"][(("library", "photos"),)] == \
        status["photos"]["inotify_watches"] == 2  # the root and d/
    assert "process_resident_memory_bytes" in metrics
    daemon.wait_ticks(1)
    assert "assetd_last_tick_timestamp_seconds" in scrape(daemon)
    assert daemon.stop() == 0


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_metrics_and_health_on_postgres(env, make_daemon):
    env.daemon.update({**DAEMON_SETTINGS, "listen": "127.0.0.1:0"})
    env.library("photos", {"a.jpg": "a", "b.jpg": "b"})
    daemon = make_daemon(env=env).start()
    files = env.files()
    present = sum(value for labels, value in scrape(daemon)["assetd_files"].items()
                  if dict(labels)["state"] != "missing")
    assert present == len(files) == 2
    status, body = request(daemon, "GET", "/health")
    assert status == 200 and json.loads(body)["database"] == "ok"
    assert daemon.stop() == 0


def test_health_is_ok_with_an_offline_library_and_only_get_is_served(daemon_env, make_daemon):
    daemon_env.library("photos", {"a.jpg": "a"})
    daemon_env.library("usb", path=str(daemon_env.tmp_path / "usb"))
    os.rmdir(daemon_env.tmp_path / "usb")  # unplugged
    daemon_env.daemon["listen"] = "127.0.0.1:0"
    daemon_env.write_config()
    daemon = make_daemon().start()

    status, body = request(daemon, "GET", "/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "database": "ok",
                                "libraries": {"photos": "online", "usb": "offline"}}
    metrics = scrape(daemon)
    assert metrics["assetd_library_online"][(("library", "usb"),)] == 0
    assert request(daemon, "POST", "/metrics")[0] == 405
    assert request(daemon, "DELETE", "/health")[0] == 405
    assert request(daemon, "GET", "/nope")[0] == 404
    assert daemon.stop() == 0


def test_unix_socket_listen(daemon_env, make_daemon):
    daemon_env.library("photos", {"a.jpg": "a"})
    sock = daemon_env.tmp_path / "run" / "assetd.sock"
    sock.parent.mkdir()
    daemon_env.daemon["listen"] = f"unix:{sock}"
    daemon_env.write_config()
    daemon = make_daemon().start()
    status, body = request(daemon, "GET", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert sum(scrape(daemon)["assetd_files"].values()) == 1
    assert daemon.stop() == 0
    assert not sock.exists(), "the socket is removed on a clean stop"


def test_listen_off_by_default_and_busy_address_is_one_line(daemon_env, make_daemon):
    daemon_env.library("photos")
    daemon = make_daemon().start()
    assert daemon.events("http.listening") == []
    assert daemon.stop() == 0

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        daemon_env.daemon["listen"] = f"127.0.0.1:{taken.getsockname()[1]}"
        daemon_env.write_config()
        proc = daemon_env.cli("run", check=2, timeout=30)
    assert "daemon.listen: cannot listen on 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr
