"""The enricher set: what each enricher is, its checksum, and running one on one file.

An insight records the checksum of the enricher config that produced it; a file records the
checksum of the whole set it was made `ready` under. Changing an enricher's name, match,
command or timeout (or the code of a built-in, via its version) changes its checksum: its
results are then out of date and it runs again; a `ready` file goes back to `enriching`.

A built-in that cannot run on this host (`video` without `ffprobe` on PATH) is left out of the
active set (`active_enrichers`): no file waits for it, `config check` says why, and the daemon
warns once at start. Once it can run, the set's checksum changes and it runs then.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from typing import Any

from daemon.config import EnricherConfig
from daemon.meta import magic_split, mime, video
from daemon.meta.external import run_command
from daemon.store.models import ENRICHER_CHECKSUM_DIGITS

# Bump when a built-in's output changes, so existing insights are regenerated.
BUILTIN_VERSIONS = {"mime": 2, "image": 2, "phash": 1, "audio": 1, "video": 1}
# Decoding pixels or starting a process: the daemon runs these after indexing, in its backfill.
HEAVY_BUILTINS = frozenset({"image", "phash", "video"})
# Run together on a file when both are pending: one decode serves both.
IMAGE_AND_PHASH = frozenset({"image", "phash"})


# Stored checksums are the first 10 hex digits (40 bits) of the SHA-256: they are on every
# file row, its (state, enricher_checksum) index and every insight row, where 32 digits cost
# ~66 B a file (100k files); a changed config keeps its checksum with a chance of 1 in 10^12.
# Migration 4 cut the stored 32 digits to these 10, so the set checksum is computed from the
# full per-enricher digests as before: a stored set checksum still matches after the upgrade.
def enricher_checksum(enricher: EnricherConfig) -> str:
    return _full_checksum(enricher)[:ENRICHER_CHECKSUM_DIGITS]


def _full_checksum(enricher: EnricherConfig) -> str:
    identity = [
        enricher.name, list(enricher.match), list(enricher.command), enricher.timeout_s,
        _builtin_version(enricher.name) if enricher.builtin else None,
    ]
    return _digest(json.dumps(identity))


def _builtin_version(name: str) -> int | str | None:
    version = BUILTIN_VERSIONS.get(name)
    # The table and libmagic answer differently: installing libmagic re-runs `mime`.
    return f"{version}+{mime.backend()}" if name == "mime" else version


def enricher_set_checksum(enrichers: Iterable[EnricherConfig]) -> str:
    full = _digest(json.dumps(sorted(_full_checksum(e) for e in enrichers)))
    return full[:ENRICHER_CHECKSUM_DIGITS]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.cache
def unavailable_reason(name: str) -> str | None:
    """Why the built-in `name` cannot run on this host (None: it can). Asked once a process."""
    if name == "video" and shutil.which(video.FFPROBE) is None:
        return (f"{video.FFPROBE} not found on PATH; install ffmpeg"
                " (Debian/Ubuntu: apt-get install ffmpeg) to get video insights")
    return None


def degraded_reason(name: str) -> str | None:
    """Why the built-in `name` runs with less than its full answers here (None: it does not)."""
    return mime.unavailable_reason() if name == "mime" else None


def enricher_notes(enricher: EnricherConfig) -> list[str]:
    """What `config check` adds about an enricher's availability on this host."""
    if not enricher.builtin:
        program = enricher.command[0]
        found = shutil.which(program) if "/" not in program else (
            program if os.access(program, os.X_OK) else None)
        return [] if found else [f"UNAVAILABLE: {program} not found or not executable"
                                 " (each file will get an error insight)"]
    if unavailable_reason(enricher.name):
        return [f"UNAVAILABLE: {unavailable_reason(enricher.name)} (no file waits for it)"]
    if degraded_reason(enricher.name):
        return [f"{degraded_reason(enricher.name)}"]
    if enricher.name == "mime":
        return [magic_split.describe()]  # builds the split (~0.2 s): config check only
    return []


def active_enrichers(enrichers: Iterable[EnricherConfig]) -> tuple[EnricherConfig, ...]:
    """The enrichers that run, and that files wait for, on this host."""
    return tuple(e for e in enrichers if not (e.builtin and unavailable_reason(e.name)))


def run_enricher(
    enricher: EnricherConfig, path: bytes, path_text: str,
    stop: Callable[[], bool] | None = None,
) -> Any:
    """The insight value for one file; `{"error": ...}` when the enricher failed on its bytes.

    Raises OSError only when the file itself could not be read (gone, replaced), or when
    `stop()` interrupted an external command: the runner then tries again later instead of
    recording a failure of the content.
    """
    if not enricher.builtin:
        return run_command(enricher, path, stop)
    return run_builtin(enricher.name, path, path_text, enricher.timeout_s, stop)


def run_builtin(
    name: str, path: bytes, path_text: str, timeout_s: float,
    stop: Callable[[], bool] | None = None,
) -> Any:
    """A built-in's value (see `run_enricher`)."""
    # numpy, Pillow and mutagen are imported on first use: every CLI command imports this
    # module (the lifecycle pass needs the checksums), and numpy alone costs ~0.1-0.3 s.
    from daemon.meta import audio, image, phash

    if name == "mime":
        return mime.detect(path, path_text)
    if name == "image":
        return image.describe(path)
    if name == "phash":
        return phash.describe(path)
    if name == "audio":
        return audio.describe(path)
    if name == "video":
        return video.describe(path, timeout_s, stop)
    raise ValueError(f"no built-in enricher {name!r}")


def run_builtins(names: tuple[str, ...], path: bytes, path_text: str, timeout_s: float
                 ) -> dict[str, Any]:
    """Several built-ins on one file, {name: value}; module-level, for a worker process.

    `image` and `phash` together decode the picture once (`phash.describe_with_image`).
    """
    if set(names) == IMAGE_AND_PHASH:
        from daemon.meta import phash

        return phash.describe_with_image(path)
    return {name: run_builtin(name, path, path_text, timeout_s) for name in names}
