"""A library belongs to the host that first indexed it; `library adopt` moves it deliberately.

Two hosts naming one library on a shared PostgreSQL index used to repoint it back and forth,
each marking the other's files missing. A SQLite index belongs to one machine: a renamed host
takes its libraries over.
"""

from __future__ import annotations

import json

from tests.conftest import Env, new_pg_schema_url


def host_env(tmp_path, url: str, host: str, files: dict) -> Env:
    env = Env(tmp_path / host, url)
    env.tmp_path.mkdir()
    env.daemon["host"] = host
    env.library("photos", files)
    return env


def library_row(env: Env) -> dict:
    return env.json("status")["libraries"][0]


def test_another_hosts_library_is_refused_until_adopted(tmp_path, pg_database):
    url = new_pg_schema_url(pg_database)
    nas1 = host_env(tmp_path, url, "nas1", {"a.jpg": "a", "b.jpg": "b"})
    nas2 = host_env(tmp_path, url, "nas2", {"c.jpg": "c"})
    nas1.cli("scan")
    before = nas1.files()

    for command in (["scan"], ["scan", "photos", "--dry-run"], ["run"]):
        proc = nas2.cli(*command, check=2)
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("assetd: library photos belongs to host nas1 (root "), line
        assert "assetd library adopt photos" in line
    assert nas1.files() == before  # nothing repointed, nothing marked missing
    assert library_row(nas1)["host"] == "nas1"

    tag = nas1.cli("tag", "add", str(nas1.tmp_path / "photos" / "a.jpg"), "keep")
    assert tag.returncode == 0
    adopted = nas2.cli("library", "adopt", "photos")
    assert adopted.stdout.strip() == (f"library photos: moved from host nas1 to nas2 "
                                      f"(root {nas2.tmp_path / 'photos'})")
    nas2.cli("scan")
    after = nas2.files()
    assert after["photos/c.jpg"]["missing"] is False
    assert after["photos/a.jpg"]["missing"] is True  # the old root's files: kept, missing
    assert after["photos/a.jpg"]["tags"] == ["keep"]
    line = nas1.cli("scan", check=2).stderr.strip()
    assert "library photos belongs to host nas2" in line


def test_adopt_of_an_unindexed_or_own_library(tmp_path, pg_database):
    url = new_pg_schema_url(pg_database)
    nas1 = host_env(tmp_path, url, "nas1", {"a.jpg": "a"})
    nas1.cli("scan", "--dry-run")  # creates the index, not the library
    line = nas1.cli("library", "adopt", "photos", check=2).stderr.strip()
    assert line == ("assetd: library photos is not in the index yet: `assetd scan photos` "
                    "indexes it for this host")
    nas1.cli("scan")
    assert nas1.cli("library", "adopt", "photos").stdout.strip() == (
        "library photos already belongs to host nas1")
    nas1.cli("library", "adopt", "nope", check=2)


def test_a_renamed_machine_takes_its_sqlite_libraries_over(sqlite_env):
    sqlite_env.daemon["host"] = "old-name"
    sqlite_env.library("photos", {"a.jpg": "a"})
    sqlite_env.cli("scan")
    sqlite_env.daemon["host"] = "new-name"
    sqlite_env.write_config()

    proc = sqlite_env.cli("--log-format", "json", "scan")
    adopted = [json.loads(line) for line in proc.stderr.splitlines()
               if '"library.adopted"' in line]
    assert [(e["library"], e["previous_host"], e["host"]) for e in adopted] == [
        ("photos", "old-name", "new-name")]
    assert library_row(sqlite_env)["host"] == "new-name"
    assert sqlite_env.files()["photos/a.jpg"]["missing"] is False
    again = sqlite_env.cli("--log-format", "json", "scan")
    assert "library.adopted" not in again.stderr
