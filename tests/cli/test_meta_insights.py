"""Insights end to end: set/show, history, and the collapse of two current ones."""

from __future__ import annotations

import shutil


def current(env, path) -> dict[str, dict]:
    return {i["kind"]: i for i in env.json("insight", "show", str(path))["insights"]}


def test_set_demotes_the_current_one_and_show_has_history(env):
    root = env.library("photos", {"a.jpg": "AAA"})
    env.cli("scan", "--no-enrich")
    env.cli("insight", "set", str(root / "a.jpg"), "rating", '{"stars": 3}')
    env.cli("insight", "set", str(root / "a.jpg"), "rating", '{"stars": 5}')
    shown = env.json("insight", "show", str(root / "a.jpg"))
    assert set(shown) == {"library", "path", "hash", "insights"}
    assert shown["library"] == "photos" and shown["path"] == "a.jpg"
    assert shown["hash"] == env.files()["photos/a.jpg"]["hash"]
    (only,) = shown["insights"]
    assert set(only) == {"kind", "value", "generated_at", "is_current", "source"}
    assert only["value"] == {"stars": 5} and only["is_current"] is True
    assert only["source"] == "user" and only["generated_at"].endswith("Z")
    history = env.json("insight", "show", str(root / "a.jpg"), "--history")["insights"]
    assert [(i["value"], i["is_current"]) for i in history] == [
        ({"stars": 5}, True), ({"stars": 3}, False)]

    bad = env.cli("insight", "set", str(root / "a.jpg"), "rating", "{stars: 1}", check=2)
    assert "not valid JSON" in bad.stderr and bad.stderr.count("\n") == 1
    env.cli("insight", "show", str(root / "nope.jpg"), check=2)


def test_two_current_insights_for_one_hash_collapse_to_the_earliest(env):
    root = env.library("photos", {"a.jpg": "same bytes"})
    env.cli("scan", "--no-enrich")
    env.cli("insight", "set", str(root / "a.jpg"), "note", '"first"')
    shutil.copy(root / "a.jpg", root / "b.jpg")
    env.cli("scan", "--no-hash")
    # b's hash is unknown: its insight is stored by path, and becomes a second current one
    # for the same content once the hash is filled in.
    env.cli("insight", "set", str(root / "b.jpg"), "note", '"second"')
    assert current(env, root / "b.jpg")["note"]["value"] == "second"
    env.cli("scan", "--no-enrich")

    out = env.json("reconcile")
    assert out["passes"]["null_hash_fill"] == 1 and out["passes"]["insight_collapse"] == 1
    assert out["changes"] == sum(out["passes"].values())
    for name in ("a.jpg", "b.jpg"):
        assert current(env, root / name)["note"]["value"] == "first"
    history = env.json("insight", "show", str(root / "b.jpg"), "--history")["insights"]
    assert [(i["value"], i["is_current"]) for i in history if i["kind"] == "note"] == [
        ("first", True), ("second", False)]
    again = env.json("reconcile")
    assert again == {"passes": {"null_hash_fill": 0, "insight_collapse": 0, "lifecycle": 0},
                     "changes": 0}
