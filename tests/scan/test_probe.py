from daemon.config import LibraryConfig
from daemon.scan.probe import probe


def test_online_directory(tmp_path):
    assert probe(LibraryConfig("l", str(tmp_path))).online


def test_missing_root_is_offline(tmp_path):
    result = probe(LibraryConfig("l", str(tmp_path / "gone")))
    assert not result.online and "does not exist" in result.reason


def test_root_that_is_a_file_is_offline(tmp_path):
    (tmp_path / "f").write_text("x")
    result = probe(LibraryConfig("l", str(tmp_path / "f")))
    assert not result.online and "not a directory" in result.reason


def test_marker(tmp_path):
    lib = LibraryConfig("l", str(tmp_path), marker=".assetd-online")
    assert not probe(lib).online
    (tmp_path / ".assetd-online").write_text("")
    assert probe(lib).online


def test_require_mount(tmp_path):
    assert not probe(LibraryConfig("l", str(tmp_path), require_mount=True)).online
    assert probe(LibraryConfig("l", "/", require_mount=True)).online
