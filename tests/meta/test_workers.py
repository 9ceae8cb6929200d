"""The worker processes of the heavy built-ins: results, a per-file timeout, a stop request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from daemon.meta import workers
from tests.conftest import REPO_ROOT, cli_env
from tests.media import jpeg_bytes
from tests.meta.pooled import run_jobs

SLOW_FFPROBE = "#!/bin/sh\nexec sleep 30\n"


@pytest.fixture
def pool():
    pool = workers.HeavyPool(workers=2)
    yield pool
    pool.kill()


def test_heavy_jobs_run_in_worker_processes(pool, tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(size=(64, 48)))
    jobs = [workers.Job(("image",), bytes(path), "a.jpg", 30),
            workers.Job(("phash",), bytes(path), "a.jpg", 30),
            workers.Job(("image", "phash"), bytes(path), "a.jpg", 30)]
    [image], [phash], both = (list(outcome.values()) for outcome in run_jobs(pool, jobs))
    assert (image["width"], image["height"]) == (64, 48)
    assert len(phash["phash"]) == 16
    assert both == [image, phash]  # one decode, the same values as two
    gone = run_jobs(pool, [workers.Job(("image",), bytes(tmp_path / "gone.jpg"), "gone.jpg", 30)])
    assert isinstance(gone[0], FileNotFoundError)  # the file, not its content: retried later


HANG_SCRIPT = """
import json, sys, time
from daemon.meta import workers
from tests.meta.pooled import run_jobs
pool = workers.HeavyPool(workers=2)
job = workers.Job(("video",), sys.argv[1].encode(), "clip.mp4", float(sys.argv[2]))
asked = time.monotonic()
stop = (lambda: time.monotonic() - asked > 0.5) if sys.argv[3] == "stop" else None
[value] = run_jobs(pool, [job], stop)
value = {"interrupted": str(value)} if isinstance(value, workers.Interrupted) else value["video"]
print(json.dumps({"value": value, "elapsed_s": time.monotonic() - asked}))
pool.kill()
"""


def run_with_fake_ffprobe(tmp_path, script: str, *args: str, ffprobe: str = SLOW_FFPROBE):
    """`script` in a real process whose PATH has the `ffprobe` given; its JSON output."""
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "ffprobe"
    fake.write_text(ffprobe)
    fake.chmod(0o755)
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    env = {**cli_env(), "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "clip.mp4"), *args], env=env,
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)


def run_with_hanging_ffprobe(tmp_path, timeout_s: float, stop: bool) -> dict:
    """A real process whose PATH has an `ffprobe` that never ends."""
    return run_with_fake_ffprobe(tmp_path, HANG_SCRIPT, str(timeout_s),
                                 "stop" if stop else "-")


def test_a_file_that_hangs_costs_its_timeout_and_is_an_error(tmp_path):
    ran = run_with_hanging_ffprobe(tmp_path, 1, stop=False)
    assert "timed out after 1s" in ran["value"]["error"] and ran["elapsed_s"] < 10


def test_a_stop_request_ends_the_batch_and_records_nothing(tmp_path):
    ran = run_with_hanging_ffprobe(tmp_path, 30, stop=True)
    assert "stopped" in ran["value"]["interrupted"] and ran["elapsed_s"] < 10


DEATH_SCRIPT = """
import json, sys
from daemon.meta import workers
from tests.media import jpeg_bytes
from tests.meta.pooled import run_jobs
open(sys.argv[1] + ".jpg", "wb").write(jpeg_bytes())
pool = workers.HeavyPool(workers=1)
jobs = [workers.Job(("video",), sys.argv[1].encode(), "clip.mp4", 30),
        workers.Job(("image",), (sys.argv[1] + ".jpg").encode(), "a.jpg", 30)]
print(json.dumps(run_jobs(pool, jobs)))
pool.kill()
"""


def test_a_worker_that_dies_fails_its_job_alone(tmp_path):
    # the fake ffprobe kills its parent: the worker process running the video job
    died, image = run_with_fake_ffprobe(tmp_path, DEATH_SCRIPT,
                                        ffprobe="#!/bin/sh\nkill -9 $PPID\n")
    assert "worker died on this file (killed by SIGKILL)" in died["video"]["error"]
    assert image["image"]["format"] == "JPEG"  # a new worker took the next job


def test_a_job_past_its_timeout_kills_only_its_worker_and_the_next_job_still_runs(tmp_path):
    # Opening a FIFO nobody writes blocks the worker for good: only a kill ends it.
    fifo = tmp_path / "stuck.jpg"
    os.mkfifo(fifo)
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(size=(64, 48)))
    pool = workers.HeavyPool(workers=1)  # the second job waits in the stuck worker's pipe
    try:
        stuck, fine = run_jobs(pool, [workers.Job(("image",), bytes(fifo), "stuck.jpg", 1),
                                      workers.Job(("image",), bytes(path), "a.jpg", 30)])
    finally:
        pool.kill()
    assert stuck == {"image": {"error": "timed out after 1s"}}
    assert (fine["image"]["width"], fine["image"]["height"]) == (64, 48)
