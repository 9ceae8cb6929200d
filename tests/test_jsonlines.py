"""JSON Lines: one object a line, whatever its text holds."""

import json

import pytest

from daemon.jsonlines import json_line

# Line breaks to str.splitlines() that JSON leaves raw with ensure_ascii=False.
BREAKS = ["\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("text", [
    "plain.jpg", "café.jpg", "nel\x85.jpg", "a\u2028b", "a\u2029b", "\u2028\x85é\u2029",
    "quote\"back\\slash\nnewline\ttab", "\\x85.jpg",
])
def test_a_line_is_one_line_and_loads_back(text):
    obj = {"path": text, "size": 1, "hash": None, "missing": False, "tags": [text]}
    line = json_line(obj)
    assert line.splitlines() == [line]
    assert not any(ch in line for ch in BREAKS)
    assert json.loads(line) == obj


def test_text_outside_ascii_stays_readable():
    assert json_line({"path": "café/日本.jpg"}) == '{"path": "café/日本.jpg"}'
    assert json_line({"path": "a\u2028b"}) == '{"path": "a\\u2028b"}'
