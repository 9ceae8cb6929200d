"""Enricher failures are visible: `enrich.failed` warnings and `files --errors`."""

from __future__ import annotations

import json


def test_failures_are_logged_and_listed(env):
    env.library("photos", {"bad.png": b"\x89PNG\r\n\x1a\nnot really", "ok.txt": "fine",
                           "clip.mp4": "x"})
    env.enrichers.append({"name": "probe", "match": ["*.mp4"],
                          "command": ["sh", "-c", "echo boom >&2; exit 3", "{path}"]})
    env.write_config()
    proc = env.cli("--log-format", "json", "scan")
    failed = [json.loads(line) for line in proc.stderr.splitlines() if "enrich.failed" in line]
    assert {("probe", "clip.mp4"), ("image", "bad.png")} <= {
        (e["enricher"], e["path"]) for e in failed}
    assert ("mime", "ok.txt") not in {(e["enricher"], e["path"]) for e in failed}
    assert all(e["level"] == "warning" and e["error"] for e in failed)

    rows = env.json_lines("files", "--errors")
    by_path = {row["path"]: row for row in rows}
    assert set(by_path) == {"bad.png", "clip.mp4"}  # ok.txt enriched fine: not listed
    [probe_error] = [e for e in by_path["clip.mp4"]["errors"] if e["enricher"] == "probe"]
    assert "exit" in probe_error["error"]
    assert "image" in [e["enricher"] for e in by_path["bad.png"]["errors"]]
    assert "errors" not in env.json_lines("files")[0]  # plain listing: shape unchanged

    human = env.cli("files", "--errors").stdout.splitlines()
    files = [line.split("\t")[0] for line in human if not line.startswith("  ")]
    assert files == ["photos/bad.png", "photos/clip.mp4"]
    assert human[1].startswith("  ") and any(line.startswith("  probe: ") for line in human)
