"""libmagic's answer without the rules the first bytes already rule out.

libmagic tries its rules one after the other, strongest first, until one matches. Bytes that
no rule names (random data, compressed or encrypted files, most dataset and model files) pay
for every one: ~200-250 µs a file with libmagic 5.44, against ~12 µs for a JPEG. Of its ~3,550
top-level binary rules, ~3,000 open with a test a regular expression decides at once: these
bytes (or these bits of them) at this fixed offset. Where none of those tests matches, none of
those rules can, and libmagic asked with the other rules alone gives the very same answer: a
rule whose first test fails prints nothing and leaves no state behind (softmagic.c, `match`).
That smaller database answers random bytes in ~30 µs.

So the compiled database libmagic itself loads is read once a process and its top-level rules
are split:
- decided: a first test of fixed bytes, or of a 1-, 2- or 4-byte number compared for equality
  (masked or not), at a fixed offset. libmagic reads such a number only where it fits
  (`mget`'s bounds check), so "matches" is exactly "the regular expression matches"; 8-byte
  numbers, which it pads with zeros past the end, are not decided.
- weak: decided rules whose test random bytes pass more often than once in `1 / WEAK_ODDS`
  (a single byte, a mask of a few bits).
- the rest: named rules, searches, regular expressions, the text tests ... in their order.
A file that passes no decided test is answered by the rest (`rest`); one that passes only weak
ones, by the rest and the weak rules (`rest_and_weak`); any other, by the whole database. A
rule that makes libmagic run over the whole database again (`indirect`, itself or through
`use`) is never left out of the database that could reach it: such a rule is decided and
not weak, or its first test is checked here (`_check_of`) and, when it may pass, the whole
database answers.

Only a database this module understands is split: libmagic's compiled format 18 (libmagic
5.39-5.45) in this host's byte order, found where libmagic finds it (`magic_getpath`, which
honours `MAGIC`), and no other magic file with rules on that path (Debian's /etc/magic is
comments). Otherwise libmagic answers with its whole database, as before (`NotSplit` says why,
and `config check` prints it: `describe`). `tests/meta/test_magic_split.py` compares the
answers with the whole database's.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAGIC_NUMBER = 0xF11E041C
FORMAT_VERSION = 18
ENTRY_BYTES = 376  # sizeof(struct magic) in format 18
WEAK_ODDS = 1 / 2000
_ENTRY = struct.Struct("=HBBBBBBBBBBiiIQ")  # struct magic up to its value
_VALUE_AT, _VALUE_BYTES = 32, 128

# From libmagic's file.h (5.44).
_INDIR, _OFFADD, _INDIROFFADD, _OFFNEGATIVE = 0x01, 0x02, 0x04, 0x80
_UNSIGNED = 0x08
_MOVED_OFFSET = _INDIR | _OFFADD | _INDIROFFADD | _OFFNEGATIVE
_STRING, _SEARCH, _INDIRECT, _NAME, _USE = 5, 20, 41, 45, 46
_STRING_WHEN_BITS = 0x20 | 0x40  # STRING_TEXTTEST, STRING_BINTEST: when it compares, not how
_REGEX_OFFSET_START = 0x10  # where a search leaves the offset for continuations, not whether
# Numbers libmagic reads only where they fit: their size and byte order.
_NUMBERS = {1: (1, sys.byteorder), 2: (2, sys.byteorder), 4: (4, sys.byteorder),
            7: (2, "big"), 8: (4, "big"), 10: (2, "little"), 11: (4, "little")}
MAGIC_MIME_TYPE = 0x10
MAGIC_PARAM_NAME_MAX, NAME_MAX = 4, 64  # as python-magic sets it on its cookies


@dataclass(frozen=True)
class _Entry:
    """The fields of one `struct magic` this module reads."""

    cont_level: int
    flag: int
    reln: str
    vallen: int
    type: int
    mask_op: int
    offset: int
    mask: int  # for numbers; for strings, the range (low 32 bits) and flags (high 32 bits)
    value: bytes

    @property
    def str_range(self) -> int:
        return self.mask & 0xFFFFFFFF

    @property
    def str_flags(self) -> int:
        return self.mask >> 32

    @property
    def name(self) -> bytes:
        """A `name` or `use` entry's rule name (`use ^name` flips the byte order)."""
        return self.value.split(b"\0", 1)[0].lstrip(b"^")


@dataclass
class _Rule:
    """A top-level entry and its continuations, in set 0 (binary tests) or 1 (text)."""

    set_index: int
    entries: list[tuple[int, _Entry]] = field(default_factory=list)

    @property
    def top(self) -> _Entry:
        return self.entries[0][1]

    def types(self) -> set[int]:
        return {entry.type for _, entry in self.entries}

    def used_names(self) -> set[bytes]:
        return {entry.name for _, entry in self.entries if entry.type == _USE}


@dataclass(frozen=True)
class _Test:
    """A decided first test: at `offset`, byte n must be one of `atoms[n]`."""

    offset: int
    atoms: tuple[bytes, ...]

    @property
    def odds(self) -> float:
        odds = 1.0
        for atom in self.atoms:
            odds *= len(atom) / 256
        return odds


class Split:
    """One process's split of the database; each thread gets its own cookies (libmagic's are
    not safe to share), reading the same two database buffers."""

    def __init__(self, library: ctypes.CDLL, data: bytes, rules: list[_Rule],
                 decided: dict[int, _Test], must_not_be_weak: set[int],
                 whole_database_checks: list[Callable[[bytes], bool]]):
        weak = {index for index, test in decided.items()
                if test.odds > WEAK_ODDS and index not in must_not_be_weak}
        self.strong = _pattern(test for index, test in decided.items() if index not in weak)
        self.weak = _pattern(decided[index] for index in weak)
        self.checks = whole_database_checks
        self.decided = len(decided)
        self.binary_rules = sum(1 for rule in rules if rule.set_index == 0)
        self._library = _prototyped(library)
        self._rest = _database(data, [r for i, r in enumerate(rules) if i not in decided])
        self._rest_and_weak = _database(
            data, [r for i, r in enumerate(rules) if i not in decided or i in weak])
        self._per_thread = threading.local()

    def answer(self, head: bytes, whole_database: Callable[[bytes], str]) -> str:
        """libmagic's media type for `head`. `whole_database` answers where a rule left out
        of the smaller databases may match."""
        if self.strong.match(head) or any(check(head) for check in self.checks):
            return whole_database(head)
        rest, rest_and_weak = self.cookies()
        found = self._library.magic_buffer(rest_and_weak if self.weak.match(head) else rest,
                                           head, len(head))
        return whole_database(head) if found is None else found.decode("utf-8", "replace")

    def cookies(self) -> tuple[int, int]:
        """This thread's two cookies (made on its first call; a process forked after it
        keeps them)."""
        cookies = getattr(self._per_thread, "cookies", None)
        if cookies is None:
            cookies = self._per_thread.cookies = (self._cookie(self._rest),
                                                  self._cookie(self._rest_and_weak))
        return cookies

    def _cookie(self, database: ctypes.Array) -> int:
        library = self._library
        cookie = library.magic_open(MAGIC_MIME_TYPE)
        if not cookie:
            raise OSError("magic_open failed")
        name_max = ctypes.c_size_t(NAME_MAX)
        library.magic_setparam(cookie, MAGIC_PARAM_NAME_MAX, ctypes.byref(name_max))
        buffers = (ctypes.c_void_p * 1)(ctypes.addressof(database))
        sizes = (ctypes.c_size_t * 1)(len(database))
        if library.magic_load_buffers(cookie, buffers, sizes, 1) != 0:
            library.magic_close(cookie)
            raise OSError("magic_load_buffers failed")
        return cookie


class NotSplit(ValueError):
    """Why the database is not split (libmagic then answers with its whole database)."""


def split() -> Split | None:
    """This process's `Split`, or None where the database cannot be split (then libmagic
    answers with its whole database; `describe` says why)."""
    return _attempt()[0]


@functools.cache
def _attempt() -> tuple[Split | None, str]:
    try:
        return _load(), ""
    except (ImportError, OSError, ValueError, AttributeError) as exc:
        return None, str(exc) or type(exc).__name__


def describe() -> str:
    """For `config check`: libmagic's version, and whether its database is split (building
    the split if this process has not: ~0.2 s)."""
    try:
        import magic

        version = magic.libmagic.magic_version()
        version_text = f"libmagic {version // 100}.{version % 100:02d}"
    except (ImportError, AttributeError, OSError):
        version_text = "libmagic"
    found, why_not = _attempt()
    if found is None:
        return f"{version_text}, its whole database for every file ({why_not})"
    return (f"{version_text}, its database split: {found.decided} of {found.binary_rules}"
            " binary rules decided by a file's first bytes")


def _load() -> Split:
    import magic  # python-magic's libmagic: the very library its cookies use

    library = ctypes.CDLL(magic.libmagic._name)
    if not hasattr(library, "magic_load_buffers"):
        raise NotSplit("this libmagic cannot load a database from memory")
    path = _compiled_database(library)
    with open(path, "rb") as database:
        data = database.read()
    return _split(library, data)


def _compiled_database(library: ctypes.CDLL) -> str:
    """The one compiled database on libmagic's path, if every other file there is comments."""
    getpath = library.magic_getpath
    getpath.restype, getpath.argtypes = ctypes.c_char_p, [ctypes.c_char_p, ctypes.c_int]
    compiled = []
    for name in os.fsdecode(getpath(None, 0) or b"").split(":"):
        if not name:
            continue
        mgc = name if name.endswith(".mgc") else name + ".mgc"
        if os.path.isfile(mgc):  # libmagic maps NAME.mgc where it exists
            compiled.append(mgc)
        elif os.path.isdir(name):
            raise NotSplit(f"{name} is a directory of magic files")
        elif os.path.isfile(name) and _has_rules(name):
            raise NotSplit(f"{name} holds rules of its own")
    if len(compiled) != 1:
        raise NotSplit(f"{len(compiled)} compiled databases on libmagic's path, not one")
    return compiled[0]


def _has_rules(path: str) -> bool:
    with open(path, "rb") as source:
        return any(line.strip() and not line.lstrip().startswith(b"#") for line in source)


def _split(library: ctypes.CDLL, data: bytes) -> Split:
    rules = _rules(data)
    risky = _risky(rules)
    decided = {index: test for index, rule in enumerate(rules)
               if rule.set_index == 0 and (test := _decided_test(rule.top)) is not None}
    checks = []
    for index in risky - decided.keys():
        check = _check_of(rules[index].top)
        if check is None:  # a pass over the database we cannot tell in advance
            raise NotSplit("a rule that runs libmagic again opens with a test not checked here")
        checks.append(check)
    return Split(library, data, rules, decided, risky, checks)


def _rules(data: bytes) -> list[_Rule]:
    if len(data) < ENTRY_BYTES or len(data) % ENTRY_BYTES:
        raise NotSplit("not a compiled magic database")
    number, version, binary_count, text_count = struct.unpack_from("=IIII", data)
    if number != MAGIC_NUMBER:
        raise NotSplit("not a compiled magic database in this host's byte order")
    if version != FORMAT_VERSION:
        raise NotSplit(f"compiled magic format {version}, not {FORMAT_VERSION}")
    if (binary_count + text_count + 1) * ENTRY_BYTES != len(data):
        raise NotSplit("a compiled magic database of an unexpected size")
    rules: list[_Rule] = []
    for index in range(binary_count + text_count):
        set_index = 0 if index < binary_count else 1
        entry = _entry(data, index)
        if entry.cont_level == 0 or index == binary_count:
            if entry.cont_level:
                raise NotSplit("a magic set opens with a continuation")
            rules.append(_Rule(set_index))
        rules[-1].entries.append((index, entry))
    return rules


def _entry(data: bytes, index: int) -> _Entry:
    at = ENTRY_BYTES * (index + 1)
    (cont_level, flag, _factor, reln, vallen, type_, _in_type, _in_op, mask_op, _cond,
     _factor_op, offset, _in_offset, _lineno, mask) = _ENTRY.unpack_from(data, at)
    value = data[at + _VALUE_AT:at + _VALUE_AT + _VALUE_BYTES]
    return _Entry(cont_level, flag, chr(reln), vallen, type_, mask_op, offset, mask, value)


def _risky(rules: list[_Rule]) -> set[int]:
    """Rules (not named ones) that may run a pass over the whole database: an `indirect`
    entry, or a `use` of a named rule that may, itself or through further `use`s."""
    named = {rule.top.name: rule for rule in rules if rule.top.type == _NAME}
    risky_names: set[bytes] = set()
    grew = True
    while grew:
        grew = False
        for name, rule in named.items():
            if name not in risky_names and (
                    _INDIRECT in rule.types() or rule.used_names() & risky_names):
                risky_names.add(name)
                grew = True
    return {index for index, rule in enumerate(rules) if rule.top.type != _NAME and (
        _INDIRECT in rule.types() or rule.used_names() & risky_names)}


def _decided_test(entry: _Entry) -> _Test | None:
    """The first test as bytes at a fixed offset, if it is one (see the module docstring)."""
    if entry.flag & _MOVED_OFFSET or entry.reln != "=" or entry.offset < 0 or entry.mask_op:
        return None
    if entry.type == _STRING:
        if entry.str_flags & ~_STRING_WHEN_BITS or not entry.vallen:
            return None
        literal = entry.value[:entry.vallen]
        return _Test(entry.offset, tuple(literal[n:n + 1] for n in range(len(literal))))
    if entry.type not in _NUMBERS:
        return None
    size, order, stored, mask = _number(entry)
    wanted = stored & (1 << 8 * size) - 1
    atoms = []
    for wanted_byte, mask_byte in zip(wanted.to_bytes(size, order), mask.to_bytes(size, order),
                                      strict=True):
        if mask_byte == 0xFF:
            atoms.append(bytes((wanted_byte,)))
        else:  # libmagic compares the masked number: these byte values pass
            atoms.append(bytes(b for b in range(256) if b & mask_byte == wanted_byte))
    return _Test(entry.offset, tuple(atoms))


def _check_of(entry: _Entry) -> Callable[[bytes], bool] | None:
    """A test that is True wherever the first test of `entry` may pass (and perhaps more
    often), for the few rules that run `indirect` and are not decided; None if unknown."""
    if entry.flag & _MOVED_OFFSET or entry.offset < 0 or entry.mask_op:
        return None
    offset = entry.offset
    if (entry.type == _SEARCH and entry.vallen
            and not entry.str_flags & ~(_STRING_WHEN_BITS | _REGEX_OFFSET_START)):
        literal, span = entry.value[:entry.vallen], entry.str_range
        end = offset + span + len(literal) if span else None
        return lambda head: literal in head[offset:end]
    if entry.type in _NUMBERS and entry.reln and entry.reln in "<>=":
        size, order, stored, mask = _number(entry)
        unsigned, relation = bool(entry.flag & _UNSIGNED), entry.reln
        # As magiccheck compares: unsigned, or the number sign-extended from its size against
        # the stored value as a signed 64-bit one.
        target = stored if unsigned else _signed(stored, 8)

        def may_pass(head: bytes) -> bool:
            if len(head) < offset + size:
                return False
            number = int.from_bytes(head[offset:offset + size], order) & mask
            return _compare(number if unsigned else _signed(number, size), relation, target)
        return may_pass
    return None


def _number(entry: _Entry) -> tuple[int, str, int, int]:
    """A number test's size and byte order in the file, the value it is compared with (as
    stored: 8 bytes), and the mask libmagic applies first (every bit where it has none)."""
    size, order = _NUMBERS[entry.type]
    everything = (1 << 8 * size) - 1
    return size, order, int.from_bytes(entry.value[:8], sys.byteorder), (
        entry.mask & everything if entry.mask else everything)


def _signed(value: int, size: int) -> int:
    return value - (1 << 8 * size) if value >> (8 * size - 1) else value


def _compare(value: int, relation: str, target: int) -> bool:
    return value < target if relation == "<" else value > target if relation == ">" \
        else value == target


def _pattern(tests: Iterable[_Test]) -> re.Pattern[bytes]:
    """One regular expression that matches at the start of a head where any test passes:
    per offset, the tests' bytes as a trie (re tries alternatives one by one)."""
    by_offset: dict[int, list[tuple[bytes, ...]]] = {}
    for test in tests:
        by_offset.setdefault(test.offset, []).append(test.atoms)
    branches = [(b".{%d}" % offset if offset else b"") + _trie(sequences)
                for offset, sequences in sorted(by_offset.items())]
    branches = [branch for branch in branches if not branch.endswith(b"(?!)")]
    return re.compile(b"(?s)(?:" + b"|".join(branches) + b")" if branches else b"(?!)")


def _trie(sequences: list[tuple[bytes, ...]]) -> bytes:
    if any(not sequence for sequence in sequences):
        return b""  # a test that ends here passes whatever follows
    by_first: dict[bytes, list[tuple[bytes, ...]]] = {}
    for sequence in sequences:
        by_first.setdefault(sequence[0], []).append(sequence[1:])
    alternatives = []
    for atom, rests in by_first.items():
        if not atom:
            continue  # no byte passes (the mask rules it out): never matches
        rest = _trie(rests)
        if rest != b"(?!)":
            alternatives.append(_atom(atom) + rest)
    if not alternatives:
        return b"(?!)"
    return alternatives[0] if len(alternatives) == 1 else b"(?:" + b"|".join(alternatives) + b")"


def _atom(values: bytes) -> bytes:
    if len(values) == 1:
        return re.escape(values)
    if len(values) == 256:
        return b"."
    return b"[" + b"".join(re.escape(bytes((value,))) for value in sorted(values)) + b"]"


def _database(data: bytes, rules: list[_Rule]) -> ctypes.Array:
    """A compiled database of `rules` (in their order), for `magic_load_buffers`: libmagic
    reads it in place for the cookies' lifetime, so it lives as long as the `Split`."""
    counts = [0, 0]
    body = bytearray()
    for rule in rules:
        counts[rule.set_index] += len(rule.entries)
        for index, _ in rule.entries:
            body += data[ENTRY_BYTES * (index + 1):ENTRY_BYTES * (index + 2)]
    header = bytearray(data[:ENTRY_BYTES])
    struct.pack_into("=II", header, 8, *counts)
    return (ctypes.c_char * (len(header) + len(body))).from_buffer_copy(header + body)


def _prototyped(library: ctypes.CDLL) -> ctypes.CDLL:
    library.magic_open.restype, library.magic_open.argtypes = ctypes.c_void_p, [ctypes.c_int]
    library.magic_close.argtypes = [ctypes.c_void_p]
    library.magic_setparam.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    library.magic_load_buffers.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t]
    library.magic_buffer.restype = ctypes.c_char_p
    library.magic_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    return library
