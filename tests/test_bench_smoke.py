"""bench/run.py end to end on a tiny tree: every figure is in its JSON. Nothing about speed.

Runs the real harness as a user would (a subprocess, this checkout's assetd), on SQLite and on
PostgreSQL, with the daemon figures on short windows. It checks that each figure was measured
and is a sane number, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER_URL

REPO_ROOT = Path(__file__).resolve().parent.parent
SCAN_FIGURES = ("cold_no_enrich", "cold", "rescan_no_enrich", "rescan", "reconcile", "dupes",
                "verify", "files_json", "rescan_edited", "rescan_moved",
                "rescan_edited_spread", "rescan_moved_spread")
RATIO_FIGURES = {"cold_no_enrich": "hash", "cold": "hash",
                 "rescan_no_enrich": "walk", "rescan": "walk",
                 "verify": "hash", "files_json": "walk",
                 "rescan_edited": "walk", "rescan_moved": "walk",
                 "rescan_edited_spread": "walk", "rescan_moved_spread": "walk"}
FILES = 300


def positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "result.json"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "run.py"),
         "--files", str(FILES), "--dirs", "10", "--rounds", "1",
         "--backends", "sqlite,postgres", "--pg-server", PG_SERVER_URL,
         "--cache-dir", str(tmp / "cache"), "--workdir", str(tmp / "work"),
         "--large-mib", "4", "--idle-seconds", "1", "--tick-interval", "500ms",
         "--settle", "100ms", "--latency-files", "3", "--burst-files", "150", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| cold `scan --no-enrich` |" in completed.stdout  # the table was printed
    return json.loads(out.read_text())


def test_every_scan_figure_on_both_backends_with_ratio_and_peak_rss(result):
    for backend in ("sqlite", "postgres"):
        figures = result["backends"][backend]["figures"]
        for name in SCAN_FIGURES:
            figure = figures[name]
            assert positive(figure["min_s"]), (backend, name, figure)
            assert len(figure["samples_s"]) == 1
            assert positive(figure["peak_rss_mib"]), (backend, name, figure)
            assert positive(figure["peak_tree_pss_mib"]), (backend, name, figure)
        for name, baseline in RATIO_FIGURES.items():
            assert figures[name]["baseline"] == baseline
            assert positive(figures[name]["ratio"])
        # One file in a hundred copies an earlier one, so there are groups to find.
        assert figures["dupes"]["groups"] > 0
    for baseline in ("hash", "walk"):
        assert positive(result["baselines"][baseline]["min_s"])
    assert set(result["backends"]["postgres_vs_sqlite"]) == set(SCAN_FIGURES)


def test_database_size_per_file_on_both_backends(result):
    sqlite = result["backends"]["sqlite"]["database_size"]
    postgres = result["backends"]["postgres"]["database_size"]
    assert sqlite["database_bytes"] > 0 and positive(sqlite["bytes_per_file"])
    assert postgres["database_bytes"] > 0 and positive(postgres["bytes_per_file"])
    assert "file" in postgres["tables"]


def test_large_file_figure(result):
    large = result["large_file"]
    assert large["size_mib"] == 4
    assert positive(large["xxhsum"]["min_s"]) and positive(large["assetd_scan"]["min_s"])
    assert positive(large["throughput_vs_xxhsum"])


def test_daemon_figures_on_both_backends(result):
    for backend in ("sqlite", "postgres"):
        daemon = result["backends"][backend]["daemon"]
        assert daemon["startup_indexed"] == FILES
        for key in ("startup_s", "startup_peak_rss_mib", "startup_peak_tree_pss_mib",
                    "sighup_rescan_s", "sighup_peak_rss_mib", "sighup_peak_tree_pss_mib",
                    "steady_rss_mib", "steady_tree_pss_mib", "idle_window_s"):
            assert positive(daemon[key]), (backend, key, daemon)
        assert daemon["idle_cpu_percent"] >= 0
        # The startup scan settled its parts (every file is `ready` at READY): the first tick
        # has nothing to change, logs nothing, and the idle window starts after it.
        assert daemon["first_tick"] is None
        for key in ("latency_ms", "follow_latency_ms"):  # the second: to `changes --follow`
            latency = daemon[key]
            assert latency["files"] == 3 and 0 < latency["p50"] <= latency["p95"] <= \
                latency["max"], (backend, key)
        burst = daemon["burst"]
        assert burst["files"] == 150 and burst["batches"] >= 1
        assert burst["last_commit_after_last_write_s"] >= 0


def test_metadata_names_the_build_and_the_machine(result):
    assert result["assetd"]["version"]
    assert result["machine"]["cpus"] >= 1
    assert result["params"]["files"] == FILES and result["tree"]["files"] == FILES
    assert "| `reconcile` |" in result["table_markdown"]


def test_the_cached_tree_is_left_as_generated(result):
    root = Path(result["tree"]["root"])
    assert not (root / "live").exists()  # the daemon's files are gone again
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == FILES
    assert all(64 <= p.stat().st_size <= 2000 for p in files)


def test_a_saved_run_prints_as_a_table_and_compares_with_itself(result, tmp_path):
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(result))
    run_py = str(REPO_ROOT / "bench" / "run.py")
    table = subprocess.run([sys.executable, run_py, "--table-from", str(saved)],
                           capture_output=True, text=True, check=True).stdout
    assert table.strip() == result["table_markdown"].strip()
    compared = subprocess.run([sys.executable, run_py, "--compare", str(saved), str(saved)],
                              capture_output=True, text=True, check=True).stdout
    rows = [line for line in compared.splitlines()[2:] if line.startswith("| ")]
    assert any("event → committed p95, postgres" in row for row in rows)
    assert all(row.endswith("| 1.00 |") for row in rows), compared


def test_the_floors_script_prints_each_floor_as_a_ratio(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "floor.py"), "--files", "200", "--dirs", "10",
         "--rounds", "1", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[2].strip("| ")
            for line in completed.stdout.splitlines() if line.startswith("| ")}
    for floor in ("xxhsum", "sqlite insert", "sqlite insert, hash index at the end",
                  "sqlite insert, all secondary indexes at the end", "libmagic / 2 cores"):
        assert rows[floor].endswith("x") and float(rows[floor][:-1]) > 0, completed.stdout


def test_the_mime_bench_measures_both_scans_and_every_format(tmp_path):
    out = tmp_path / "mime.json"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "mime_bench.py"), "--files", "200", "--dirs",
         "10", "--rounds", "1", "--repeat", "5", "--cache-dir", str(tmp_path / "cache"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result["files"] == 200
    for figure in ("xxhsum", "cold_no_enrich", "cold_mime_only"):
        assert positive(result["figures"][figure]["min_s"]), figure
        assert positive(result["figures"][figure]["ratio_to_xxhsum"]), figure
    assert positive(result["figures"]["cold_mime_only"]["peak_rss_mib"])
    for name, timed in result["per_format"].items():
        assert positive(timed["libmagic_us"]) and positive(timed["detect_us"]), name
    assert "| cold_mime_only |" in completed.stdout
