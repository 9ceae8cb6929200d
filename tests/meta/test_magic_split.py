"""`magic_split`: libmagic's answer from a database without the rules the bytes rule out is the
whole database's answer.

Every check compares with python-magic's own cookie (the whole database) on the same bytes:
random bytes of every size, bytes made to pass each rule's first test that the split decides
or checks, and real files.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import magic
import pytest

from daemon.meta import magic_split, mime
from daemon.store import Store, labels
from tests.conftest import REPO_ROOT, cli_env
from tests.media import clip, image_bytes, jpeg_bytes, needs_ffmpeg, tone

needs_libmagic = pytest.mark.skipif(mime.backend() != mime.LIBMAGIC, reason="libmagic not loaded")


def _database_path() -> str | None:
    """The compiled database libmagic loads here (None: not one this module reads)."""
    if mime.backend() != mime.LIBMAGIC:
        return None
    return magic_split._compiled_database(ctypes.CDLL(magic.libmagic._name))


def _database_version() -> int | None:
    path = _database_path()
    if path is None:
        return None
    with open(path, "rb") as database:
        return struct.unpack("=II", database.read(8))[1]


pytestmark = [
    needs_libmagic,
    pytest.mark.skipif(_database_version() != magic_split.FORMAT_VERSION,
                       reason="this host's compiled magic is not format 18 (libmagic 5.39-5.45)"),
]


@pytest.fixture(scope="module")
def whole():
    return magic.Magic(mime=True).from_buffer


@pytest.fixture(scope="module")
def split():
    split = magic_split.split()
    assert split is not None, "Debian's libmagic 5.44 database splits"
    return split


def test_random_bytes_of_every_size_get_the_whole_databases_answer(split, whole):
    heads = random.Random(1)
    for _ in range(1500):
        size = heads.choice([heads.randint(0, 64), heads.randint(64, 2000),
                             heads.randint(2000, mime.SNIFF_BYTES)])
        head = heads.randbytes(size)
        assert split.answer(head, whole) == whole(head), head[:16].hex()


def test_bytes_that_pass_each_decided_first_test_get_the_whole_databases_answer(split, whole):
    """One head a rule: its first test's bytes at its offset, random bytes around them. A
    strong test sends it to the whole database; a weak one, to the rest plus the weak rules;
    every rule's continuations then decide."""
    data = Path(_database_path()).read_bytes()
    rules = magic_split._rules(data)
    filler = random.Random(2)
    checked = 0
    for rule in rules:
        test = magic_split._decided_test(rule.top) if rule.set_index == 0 else None
        if test is None or not all(test.atoms) or test.offset > 4096:
            continue
        passing = bytes(filler.choice(atom) for atom in test.atoms)
        head = (filler.randbytes(test.offset) + passing
                + filler.randbytes(filler.randint(0, 600)))
        assert split.answer(head, whole) == whole(head), (rule.top, head[:32].hex())
        checked += 1
    assert checked > 2500


def test_bytes_that_pass_the_checked_first_tests_get_the_whole_databases_answer(split, whole):
    """The rules that run `indirect` and are not decided: a search and a number compared with
    `<` in libmagic 5.44; heads that pass them, and heads around their bounds."""
    filler = random.Random(3)
    heads = []
    for offset in (0, 1, 2, 30, 48, 49, 60):
        heads.append(filler.randbytes(offset) + b"SZDD\x88\xf0'3" + filler.randbytes(300))
    for number in (0, 1, 2, 3, 4, 0xFFFFFFFF, 0x80000000):
        heads.append(number.to_bytes(4, "little") + filler.randbytes(filler.randint(0, 900)))
    assert split.checks, "libmagic 5.44 has such rules"
    for head in heads:
        assert split.answer(head, whole) == whole(head), head[:16].hex()


@needs_ffmpeg
def test_real_files_get_the_whole_databases_answer(tmp_path, split, whole):
    made = [tone(tmp_path / "a.mp3"), tone(tmp_path / "a.wav"), tone(tmp_path / "a.aac"),
            clip(tmp_path / "v.mp4"), clip(tmp_path / "v.mkv")]
    contents = [path.read_bytes()[:mime.SNIFF_BYTES] for path in made]
    contents += [jpeg_bytes(), image_bytes("PNG"), image_bytes("TIFF"), image_bytes("ICO"),
                 image_bytes("TGA"), image_bytes("PCX"), gzip.compress(b"x" * 500, mtime=0),
                 b"hello world\n" * 40, b'{"a": [1, 2, 3]}\n', b"a,b\n1,2\n" * 20,
                 b"#!/bin/sh\necho hi\n", b"<?xml version='1.0'?><a/>", b"%!PS-Adobe-3.0\n",
                 b"MZ" + bytes(200), b"\x7fELF\x02\x01\x01" + bytes(120), b"PK\x03\x04" + bytes(60),
                 b"", b"\x00", bytes(4096)]
    for content in contents:
        assert split.answer(content, whole) == whole(content), content[:16].hex()


def test_mime_answers_from_the_split_after_its_first_calls(monkeypatch, split):
    """A process splits the database only once it has asked libmagic enough (building the
    split costs what ~1,000 files save); from then on random bytes never reach the whole
    database."""
    asked = []

    def whole_database(head: bytes) -> str:
        asked.append(head)
        return magic.Magic(mime=True).from_buffer(head)

    monkeypatch.setattr(mime, "_whole_database_calls", 0)
    heads = random.Random(4)
    for _ in range(mime.SPLIT_AFTER_CALLS):
        mime._by_libmagic(heads.randbytes(100), whole_database)
    assert len(asked) == mime.SPLIT_AFTER_CALLS
    asked.clear()
    answered = 0
    while answered < 50:
        head = heads.randbytes(500)
        if split.strong.match(head) or any(check(head) for check in split.checks):
            continue  # the whole database's to answer, rightly
        assert mime._by_libmagic(head, whole_database) == magic.Magic(mime=True).from_buffer(head)
        answered += 1
    assert asked == [], "random bytes went to the whole database"


def _split_in_a_process(env_magic: str) -> str:
    """Whether a fresh process with MAGIC=`env_magic` splits (libmagic's path decides)."""
    env = {**os.environ, "MAGIC": env_magic}
    return subprocess.run(
        [sys.executable, "-c", "from daemon.meta import magic_split as s;"
         " print('split' if s.split() else 'whole')"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT, env=env).stdout.strip()


def test_a_local_magic_file_with_rules_keeps_the_whole_database(tmp_path):
    """A rule in a source file on libmagic's path (as /etc/magic may hold) comes before the
    compiled ones: the split would leave it out, so there is none."""
    comments = tmp_path / "comments"
    comments.write_text("# local additions\n\n")
    local = tmp_path / "local"
    local.write_text("0 string ASSETDTEST assetd test data\n!:mime application/x-assetd-test\n")
    compiled = _database_path()
    assert _split_in_a_process(f"{comments}:{compiled}") == "split"
    assert _split_in_a_process(f"{local}:{compiled}") == "whole"
    assert _split_in_a_process(str(tmp_path)) == "whole"  # a directory of magic files


SYNTHETIC_MAGIC = """\
# A one-byte (weak) first test whose continuation runs libmagic over the database again.
0\tbyte\t0x01\tweak wrapper
>8\tindirect\tx
# What that pass finds: a strong first test, one the smaller databases leave out.
0\tstring\t\\xfeINNER\\xff\tinner format
!:mime\tapplication/x-assetd-inner
0\tname\tinner-pass
>0\tindirect/r\tx
# A search first (not decided) that runs the pass through `use`.
0\tsearch/16\t\\xffWRAP\\xfe\tsearch wrapper
>&0\tuse\tinner-pass
# A number compared with `<` first (not decided) that runs the pass too.
0\tbelong\t<3\tsmall number wrapper
>4\tbelong\t0x5a5a5a5a
>>16\tindirect\tx
"""
SYNTHETIC_HEADS = {
    "weak first test": b"\x01" + bytes(7) + b"\xfeINNER\xff" + bytes(40),
    "search first test": b"\x10\x11\x12\xffWRAP\xfe\xfeINNER\xff" + bytes(40),
    "number compared first": b"\x00\x00\x00\x01ZZZZ" + bytes(8) + b"\xfeINNER\xff" + bytes(40),
}
_ANSWERS = """
import json, magic
from daemon.meta import magic_split
from tests.meta.test_magic_split import SYNTHETIC_HEADS
whole, split = magic.Magic(mime=True).from_buffer, magic_split.split()
print(json.dumps({name: [whole(head), split and split.answer(head, whole)]
                  for name, head in SYNTHETIC_HEADS.items()}))
"""


def test_a_rule_that_runs_libmagic_again_is_answered_by_the_whole_database(tmp_path):
    """`indirect` runs the rules over the bytes again from some offset: in a smaller database
    that pass would miss the rules left out. A database compiled here (libmagic's own
    `magic_compile`) holds one such rule behind each kind of first test."""
    (tmp_path / "synthetic").write_text(SYNTHETIC_MAGIC)
    library = ctypes.CDLL(magic.libmagic._name)
    library.magic_open.restype = ctypes.c_void_p
    library.magic_compile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    cookie = library.magic_open(0)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)  # magic_compile writes NAME.mgc into the working directory
        assert library.magic_compile(cookie, b"synthetic") == 0
    finally:
        os.chdir(cwd)
    env = {**os.environ, "MAGIC": str(tmp_path / "synthetic.mgc")}
    answers = json.loads(subprocess.run(
        [sys.executable, "-c", _ANSWERS], capture_output=True, text=True, check=True,
        cwd=REPO_ROOT, env=env).stdout)
    for name, (whole_answer, split_answer) in answers.items():
        assert whole_answer == "application/x-assetd-inner", name
        assert split_answer == whole_answer, name


def test_a_database_of_another_format_is_not_split():
    data = bytearray(Path(_database_path()).read_bytes()[:magic_split.ENTRY_BYTES * 4])
    struct.pack_into("=I", data, 4, magic_split.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="format"):
        magic_split._rules(bytes(data))


SCANNED_FILES = 3_000  # each of the two hash workers sniffs ~1,500: past SPLIT_AFTER_CALLS


def test_a_scan_whose_workers_split_the_database_stores_libmagics_answers(sqlite_env, whole):
    """The whole path, in real processes: `assetd scan` hashes and sniffs in its workers,
    each of which splits libmagic's database after its first 1,000 files; every stored
    `mime` value is still the whole database's answer for the file's bytes."""
    contents = random.Random(6)
    files = {f"d{n % 10}/f{n:04d}": contents.randbytes(contents.randint(64, 3000))
             for n in range(SCANNED_FILES)}
    sqlite_env.library("data", files)
    sqlite_env.cli("scan", "data")
    store = Store(sqlite_env.db_url)
    try:
        stored = dict(store.query(
            f"SELECT f.rel_path, {labels.insight_value('i')} FROM file f JOIN insight i"
            f" ON i.content_hash = f.content_hash AND i.is_current"
            f" WHERE {labels.insight_kind('i')} = 'mime'"))
    finally:
        store.close()
    assert len(stored) == SCANNED_FILES
    named = 0
    for name, content in files.items():
        value = json.loads(stored[name.encode()])
        if value["detected_by"] == "libmagic":
            named += 1
            assert value["mime"] == whole(content), name
        else:  # libmagic said octet-stream; Pillow and the extension had no better answer
            assert whole(content) == "application/octet-stream", name
    assert named > 10  # random bytes libmagic names all the same (x-dosexec, zlib ...)


def test_config_check_says_whether_libmagic_answers_from_a_split_database(sqlite_env, tmp_path):
    sqlite_env.library("data", {"a.bin": b"\x00\x01"})
    line = _mime_line(sqlite_env.cli("config", "check"))
    assert re.search(r"libmagic \d+\.\d\d, its database split: \d+ of \d+ binary rules", line)
    local = tmp_path / "local"
    local.write_text("0 string ASSETDTEST assetd test data\n")
    env = {**cli_env(), "MAGIC": f"{local}:{_database_path()}"}
    line = _mime_line(sqlite_env.cli("config", "check", process_env=env))
    assert f"its whole database for every file ({local} holds rules of its own)" in line


def _mime_line(checked) -> str:
    return next(li for li in checked.stdout.splitlines() if li.startswith("enricher mime"))
