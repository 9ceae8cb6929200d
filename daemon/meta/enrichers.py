"""The enricher set: what each enricher is, its checksum, and running one on one file.

An insight records the checksum of the enricher config that produced it; a file records the
checksum of the whole set it was made `ready` under. Changing an enricher's name, match,
command or timeout (or the code of a built-in, via its version) changes its checksum: its
results are then out of date and it runs again; a `ready` file goes back to `enriching`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from daemon.config import EnricherConfig
from daemon.meta import image, mime
from daemon.meta.external import run_command

# Bump when a built-in's output changes, so existing insights are regenerated.
BUILTIN_VERSIONS = {"mime": 1, "image": 1}


def enricher_checksum(enricher: EnricherConfig) -> str:
    identity = [
        enricher.name, list(enricher.match), list(enricher.command), enricher.timeout_s,
        BUILTIN_VERSIONS.get(enricher.name) if enricher.builtin else None,
    ]
    return _digest(json.dumps(identity))


def enricher_set_checksum(enrichers: Iterable[EnricherConfig]) -> str:
    return _digest(json.dumps(sorted(enricher_checksum(e) for e in enrichers)))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
    if enricher.name == "mime":
        return mime.detect(path, path_text)
    return image.describe(path)
