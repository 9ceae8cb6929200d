"""Property tests for file names: any bytes a filesystem allows are indexed, shown and passed on
exactly.

Names with non-UTF-8 bytes, control characters, 255 bytes, a leading `-`, inside 100-deep
paths: the index keeps the exact bytes, human output keeps one unambiguous line per file, and
an external enricher receives the path as one argument (never an option).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli.output import display_path
from daemon.scan.apply import path_text
from tests.conftest import REPO_ROOT, Env, cli_env

# A name: 1 to 255 bytes, anything but NUL and '/', not "." or "..".
NAME_BYTES = st.binary(min_size=1, max_size=255).map(
    lambda b: b.replace(b"\x00", b"_").replace(b"/", b"_")
).filter(lambda b: b not in (b".", b".."))
HOSTILE = st.one_of(
    NAME_BYTES,
    st.sampled_from([b"-rf", b"--help", b"-", b"a\nb", b"tab\there", b"\xff\xfe", b"\\xff",
                     b"caf\xc3\xa9", b"\xe2\x80\xa8", b"x" * 255, b" lead", b"trail "]),
)


@settings(max_examples=500, deadline=None)
@given(a=st.binary(max_size=40), b=st.binary(max_size=40))
def test_display_is_one_line_and_unambiguous(a, b):
    shown = display_path(a)
    assert len(shown.splitlines()) <= 1 and shown.isprintable()
    if a != b:
        assert shown != display_path(b)


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=st.lists(HOSTILE, min_size=1, max_size=25, unique=True))
def test_hostile_names_are_indexed_exactly(tmp_path_factory, names):
    tmp_path = tmp_path_factory.mktemp("names")
    env = Env(tmp_path, f"sqlite:///{tmp_path}/index.db")
    root = env.library("lib")
    deep = b"/".join([b"d"] * 100)  # 100 directories deep
    os.makedirs(os.fsencode(root) + b"/" + deep)
    expected = set()
    for i, name in enumerate(names):
        rel = name if i % 2 == 0 else deep + b"/" + name
        with open(os.fsencode(root) + b"/" + rel, "wb") as f:
            f.write(b"content %d" % i)
        expected.add(rel)
    log = tmp_path / "args.log"
    env.enrichers.append({"name": "argv", "match": ["*"],
                          "command": [sys.executable, "-c",
                                      "import sys, os; open(sys.argv[2], 'ab').write("
                                      "os.fsencode(sys.argv[1]) + b'\\0'); print('{}')",
                                      "{path}", str(log)]})
    env.write_config()
    env.cli("scan")

    rows = env.json_lines("files")
    assert {row["path"] for row in rows} == {path_text(rel) for rel in expected}
    human = env.cli("files").stdout.splitlines()
    assert len(human) == len(expected)  # one line per file, whatever the names hold
    received = set(log.read_bytes().split(b"\0")[:-1])
    assert received == {os.fsencode(root) + b"/" + rel for rel in expected}


def test_a_name_starting_with_a_dash_is_a_path_to_the_enricher(tmp_path):
    """The enricher gets an absolute path: `-rf` cannot read as an option."""
    env = Env(tmp_path, f"sqlite:///{tmp_path}/index.db")
    root = env.library("lib", {"-rf": "x"})
    env.enrichers.append({"name": "ls", "match": ["*"],
                          "command": ["sh", "-c", 'printf \'{"arg": "%s"}\' "$1"', "sh",
                                      "{path}"]})
    env.write_config()
    env.cli("scan")
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(env.config_path), "insight", "show",
         str(root / "-rf"), "--json"], capture_output=True, text=True, cwd=REPO_ROOT,
        env=cli_env(), check=True)
    [value] = [i["value"] for i in json.loads(proc.stdout)["insights"] if i["kind"] == "ls"]
    assert value == {"arg": str(root / "-rf")}
