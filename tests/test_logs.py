"""Log lines: key order, one line per event, and warnings on stderr when logging to a file."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT, cli_env

SCRIPT = """
import sys
from daemon import logs
logs.configure(level="debug", fmt="json", log_file=sys.argv[1])
log = logs.get_logger()
log.info("scan.finished", library="photos", dry_run=False, created=1)
log.debug("hash.deferred", path="a.jpg", dry_run=True)
log.warning("enrich.failed", enricher="x", error="Traceback:\\n  line two\\r\\nlast")
log.error("writer.failed", error="boom")
"""


def run(log_file: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, log_file], capture_output=True,
                          text=True, cwd=REPO_ROOT, env=cli_env(), check=True, timeout=60)


def test_json_lines_start_with_timestamp_level_event_and_stay_one_line(tmp_path):
    lines = run("").stderr.splitlines()
    assert len(lines) == 4
    events = [json.loads(line) for line in lines]
    for event in events:
        assert list(event)[:3] == ["timestamp", "level", "event"]
        assert event["timestamp"].endswith("Z")
    assert "dry_run" not in events[0]  # false is noise on every daemon line
    assert events[1]["dry_run"] is True
    assert events[2]["error"] == "Traceback: line two last"


def test_with_a_log_file_warnings_also_go_to_stderr(tmp_path):
    log_file = tmp_path / "assetd.log"
    proc = run(str(log_file))
    in_file = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    on_stderr = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
    assert in_file == ["scan.finished", "hash.deferred", "enrich.failed", "writer.failed"]
    assert on_stderr == ["enrich.failed", "writer.failed"]


STDLIB_FIRST = """
import logging, sys
from daemon import logs
logs.configure(level="info", fmt="json")
print("structlog" in sys.modules)  # not yet: it is imported for the first event
logging.getLogger("watchdog").warning("queue overflow")
"""


def test_structlog_is_configured_on_the_first_event_even_a_stdlib_one():
    proc = subprocess.run([sys.executable, "-c", STDLIB_FIRST], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=cli_env(), check=True, timeout=60)
    assert proc.stdout.split() == ["False"]
    [event] = [json.loads(line) for line in proc.stderr.splitlines()]
    assert list(event)[:3] == ["timestamp", "level", "event"]
    assert event["event"] == "stdlib.watchdog" and event["message"] == "queue overflow"


RELOAD = """
from daemon import logs
logs.configure(level="warning", fmt="json")
log = logs.get_logger()
log.info("dropped")
logs.configure(level="info", fmt="json")
log.info("config.reloaded")
"""


def test_a_new_configuration_reaches_loggers_handed_out_before_it():
    """SIGHUP: the runner's logger was made at startup; the reloaded log level applies to it.
    In its own process: the logging set up here would outlive the test."""
    proc = subprocess.run([sys.executable, "-c", RELOAD], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=cli_env(), check=True, timeout=60)
    events = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
    assert events == ["config.reloaded"]


ENABLED = """
from daemon import logs
print(logs.enabled("debug"))
logs.configure(level="warning", fmt="json")
print(logs.enabled("info"), logs.enabled("warning"), logs.enabled("error"))
logs.configure(level="debug", fmt="json")
print(logs.enabled("debug"))
"""


def test_enabled_follows_the_configured_level():
    """What a one-shot command asks before logging an info event it would drop (so that
    structlog is not imported for it). In its own process, like the test above."""
    proc = subprocess.run([sys.executable, "-c", ENABLED], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=cli_env(), check=True, timeout=60)
    assert proc.stdout.split("\n")[:3] == ["True", "False True True", "True"]
