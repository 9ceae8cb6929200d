"""The daemon's startup scan settles its parts as it applies them: at READY=1, before any tick,
a file whose only enricher is the sniffed `mime` is `ready`, and one a heavy enricher waits for
(a picture: `image`, `phash`) is `enriching` until the tick's backfill has run them."""

from __future__ import annotations

from tests.media import jpeg_bytes


def test_the_startup_scan_leaves_mime_only_files_ready(daemon_env, index, make_daemon):
    daemon_env.library("photos", {"a.txt": "some text", "p.jpg": jpeg_bytes()})
    daemon_env.daemon["tick_interval"] = 3600  # no tick before the look below
    daemon_env.write_config()
    daemon = make_daemon().start()
    assert daemon.last_tick() is None
    states = {key: row["state"] for key, row in index.rows().items()}
    assert states == {"photos/a.txt": "ready", "photos/p.jpg": "enriching"}
