"""The scheduled verify in the real daemon: a flipped byte behind an unchanged size and mtime
is a `corrupt` change, a `verify.mismatch` warning and a metric; the cursor survives a
restart; an offline library keeps its cursor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from daemon.config import empty_config
from daemon.meta.verify import Mismatch
from daemon.meta.verify_pass import VerifyCursor, load_cursor, setting_key
from daemon.service.progress import StopFlag
from daemon.service.queue import ScanQueue, VerifyProgress
from daemon.service.scheduled_verify import VERIFY_JOB_ID, ScheduledVerify, record_progress
from daemon.store import Store, changes
from tests.service.conftest import DAEMON_SETTINGS, query_db, write
from tests.service.test_daemon_http import scrape

# Short passes, so a test sees several; the pacing itself is tested in test_verify_pass.py.
FAST_PASS = {"verify_interval": "2s", "verify_rate": "100MB/s"}
# Long enough that a pass is still under way when the test stops the daemon: 60 files over
# 30 s, a step every 0.5 s, about one file per step.
SLOW_PASS = {"verify_interval": "30s", "verify_rate": "100MB/s"}
SLOW_FILES = {f"f{i:02}.bin": f"file {i}" * 10 for i in range(60)}


def flip_a_byte(path: Path) -> None:
    """Bit rot: one byte differs, the size and mtime are put back exactly."""
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def stored_cursor(db_url: str, library: str) -> VerifyCursor | None:
    rows = query_db(db_url, f"SELECT value FROM setting WHERE key = '{setting_key(library)}'")
    return VerifyCursor.from_text(rows[0][0]) if rows else None


def corrupt_changes(db_url: str) -> list[changes.ChangeRow]:
    store = Store(db_url)
    try:
        return [row for row in changes.read(store).rows if row.kind == changes.CORRUPT]
    finally:
        store.close()


@pytest.mark.postgres
def test_a_flipped_byte_is_a_corrupt_change_a_warning_and_a_metric(env, make_daemon):
    env.daemon.update({**DAEMON_SETTINGS, **FAST_PASS, "listen": "127.0.0.1:0"})
    root = env.library("photos", {"rot.jpg": "good bytes " * 100, "ok.jpg": "fine",
                                  "edit.jpg": "v1"})
    daemon = make_daemon(env=env).start()
    first = daemon.wait_log("verify.finished", library="photos")
    assert (first["files"], first["mismatches"]) == (3, 0)
    (status,) = env.json("status")["libraries"]
    assert status["verify"]["of"] == 3 and 0 <= status["verify"]["verified"] <= 3
    assert status["verify"]["pass_started_at"].endswith("Z")
    stored = env.files()["photos/rot.jpg"]["hash"]

    flip_a_byte(root / "rot.jpg")
    write(root / "edit.jpg", "v2, a real edit")  # new size and mtime: the scan's business
    warning = daemon.wait_log("verify.mismatch", path="rot.jpg")
    assert warning["level"] == "warning" and warning["library"] == "photos"
    assert warning["expected"] == stored
    assert warning["actual"].startswith("xxh128:") and warning["actual"] != stored
    corrupt = daemon.wait_for(lambda: corrupt_changes(env.db_url), message="corrupt change")
    assert (corrupt[0].library, corrupt[0].path, corrupt[0].content_hash) == \
        ("photos", "rot.jpg", stored)
    assert corrupt[0].detail == {"actual": warning["actual"]}
    assert scrape(daemon)["assetd_verify_mismatches_total"][(("library", "photos"),)] >= 1

    # Reported again by the next pass (once per pass), never rewritten, and the edit never.
    daemon.wait_log("verify.finished", library="photos", mismatches=1)
    daemon.wait_log("verify.mismatch", path="rot.jpg", count=2)
    assert env.files()["photos/rot.jpg"]["hash"] == stored
    assert not daemon.events("verify.mismatch", path="edit.jpg")
    assert {row.path for row in corrupt_changes(env.db_url)} == {"rot.jpg"}
    assert daemon.stop() == 0


@pytest.mark.postgres
def test_a_restart_goes_on_from_the_stored_cursor(env, make_daemon):
    env.daemon.update({**DAEMON_SETTINGS, **SLOW_PASS})
    env.library("photos", SLOW_FILES)
    daemon = make_daemon(env=env).start()
    daemon.wait_for(lambda: (c := stored_cursor(env.db_url, "photos")) and c.files >= 3,
                    message="a few files verified")
    assert daemon.stop() == 0
    before = stored_cursor(env.db_url, "photos")
    assert before.of_files == 60 and 3 <= before.files < 60  # stopped mid-pass

    restarted = make_daemon(env=env).start()
    after = restarted.wait_for(
        lambda: (c := stored_cursor(env.db_url, "photos")) and c.files > before.files and c,
        message="the pass going on")
    # The same pass, from where it stopped: not a new pass from the first file.
    assert after.pass_started_at == before.pass_started_at
    assert after.last_file_id > before.last_file_id
    assert restarted.stop() == 0


def test_an_offline_library_is_not_read_and_keeps_its_cursor(daemon_env, make_daemon):
    daemon_env.daemon.update(SLOW_PASS)
    root = daemon_env.library("usb", SLOW_FILES, marker=".mounted")
    write(root / ".mounted", "")
    daemon_env.write_config()
    daemon = make_daemon().start()
    daemon.wait_for(lambda: (c := stored_cursor(daemon_env.db_url, "usb")) and c.files >= 1,
                    message="verify started")
    os.unlink(root / ".mounted")
    daemon.wait_log("library.offline", library="usb")
    held = stored_cursor(daemon_env.db_url, "usb")
    daemon.wait_ticks(6)  # ~2 s: four steps, each due about one file
    assert stored_cursor(daemon_env.db_url, "usb") == held

    write(root / ".mounted", "")
    daemon.wait_log("library.online", library="usb")
    resumed = daemon.wait_for(
        lambda: (c := stored_cursor(daemon_env.db_url, "usb")) and c.files > held.files and c,
        message="verify going on")
    assert resumed.pass_started_at == held.pass_started_at
    assert daemon.stop() == 0


def test_the_job_follows_verify_interval(sqlite_url):
    """`verify_interval = ""` schedules nothing; a reload moves or removes the job."""
    store = Store(sqlite_url)
    scheduler = BackgroundScheduler()  # not started: no thread, the jobs are only listed
    config = empty_config(sqlite_url)
    verify = ScheduledVerify(store, ScanQueue(0.1), scheduler, StopFlag(), lambda: config,
                             lambda _name: True)
    try:
        verify.schedule(None)
        assert scheduler.get_job(VERIFY_JOB_ID) is None
        verify.schedule(2.0)
        assert scheduler.get_job(VERIFY_JOB_ID).trigger.interval.total_seconds() == 0.5
        verify.schedule(30 * 86400.0)
        assert scheduler.get_job(VERIFY_JOB_ID).trigger.interval.total_seconds() == 10
        verify.schedule(None)
        assert scheduler.get_job(VERIFY_JOB_ID) is None
    finally:
        store.close()


def test_the_writer_records_mismatches_and_never_moves_a_cursor_back(store, log_capture):
    """A step retried after a database outage can reach the writer after a newer one."""
    rot = Mismatch("photos", b"a/rot.jpg", "xxh128:" + "0" * 32, "xxh128:" + "1" * 32)
    newer = VerifyCursor(1000.0, 10, 100).visited(7, 10, True).visited(8, 10, False)
    older = VerifyCursor(1000.0, 10, 100).visited(7, 10, True)
    record_progress(store, VerifyProgress("photos", newer, (rot,)))
    record_progress(store, VerifyProgress("photos", older, (rot,)))
    assert load_cursor(store, "photos") == newer
    corrupt = [row for row in changes.read(store).rows if row.kind == changes.CORRUPT]
    assert [(row.library, row.path, row.content_hash, row.detail) for row in corrupt] == \
        [("photos", "a/rot.jpg", rot.expected, {"actual": rot.actual})] * 2
    warnings = log_capture.named("verify.mismatch")
    assert [(w["log_level"], w["path"], w["actual"]) for w in warnings] == \
        [("warning", "a/rot.jpg", rot.actual)] * 2

    next_pass = VerifyCursor(2000.0, 10, 100)
    record_progress(store, VerifyProgress("photos", next_pass, (), finished=newer))
    assert load_cursor(store, "photos") == next_pass
    (finished,) = log_capture.named("verify.finished")
    assert (finished["files"], finished["mismatches"]) == (2, 1)
