"""Content rules: which files the media built-ins apply to, judged by what the bytes are.

`image`, `phash`, `audio` and `video` apply to a file when their `match` globs select its path
(default `*`) **and** its content is of their kind: the current `mime` insight of its hash names
a type they handle (`image/...` for `image`, whatever the extension says). Without a `mime`
insight (the `mime` enricher is disabled or does not match the path) the extension decides,
from a fixed list per enricher.

The lifecycle pass (SQL) and the enrich runner (Python) must agree, or a file waits forever;
both test the stored JSON text of the `mime` insight for the same substring
(`"mime": "image/`), which the `mime` enricher always writes first. SQLite's `instr()` and
PostgreSQL's `strpos()` are exact, case-sensitive byte searches, as Python's `in` is.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from daemon.meta.match import GlobSet, sql_match
from daemon.store import labels, paths

MIME_KIND = "mime"


@dataclass(frozen=True)
class ContentRule:
    mime_prefixes: tuple[str, ...]  # the content is of this kind ...
    mime_excluded: tuple[str, ...] = ()  # ... unless it is one of these
    fallback_globs: tuple[str, ...] = ()  # no mime insight: the extension decides

    def _needles(self, prefixes: tuple[str, ...]) -> list[str]:
        return [f'"{MIME_KIND}": "{prefix}' for prefix in prefixes]

    def applies_to_mime_text(self, mime_text: str) -> bool:
        """`mime_text`: the stored JSON text of the current `mime` insight."""
        return (any(n in mime_text for n in self._needles(self.mime_prefixes))
                and not any(n in mime_text for n in self._needles(self.mime_excluded)))

    def applies_by_path(self, path_text: str) -> bool:
        return _glob_set(self.fallback_globs).matches(path_text)

    def sql(self, *, is_sqlite: bool) -> tuple[str, list[Any]]:
        """SQL true when this rule selects `file` (by its `mime` insight, else its path)."""
        value = labels.insight_value("m")
        find = f"instr({value}, ?) > 0" if is_sqlite else f"strpos({value}, ?) > 0"
        current_mime = (
            "SELECT 1 FROM insight m WHERE m.content_hash = file.content_hash"
            f" AND {labels.insight_kind_is('m')} AND m.is_current"
        )
        wanted = " OR ".join(find for _ in self.mime_prefixes)
        unwanted = " OR ".join(find for _ in self.mime_excluded) or "1 = 0"
        by_path, path_params = sql_match(
            self.fallback_globs, paths.text_sql("file", is_sqlite=is_sqlite), is_sqlite=is_sqlite)
        sql = (
            f"(EXISTS ({current_mime} AND ({wanted}) AND NOT ({unwanted}))"
            f" OR (NOT EXISTS ({current_mime}) AND {by_path}))"
        )
        return sql, [MIME_KIND, *self._needles(self.mime_prefixes),
                     *self._needles(self.mime_excluded), MIME_KIND, *path_params]


@functools.cache
def _glob_set(globs: tuple[str, ...]) -> GlobSet:
    return GlobSet(globs)


def mime_text(value: Any) -> str:
    """The JSON text a `mime` value is stored as (as `insights.record_insights` writes it)."""
    return json.dumps(value, ensure_ascii=False)


_IMAGE = ContentRule(
    mime_prefixes=("image/",),
    # Pillow opens none of these without plugins: they would only collect errors.
    mime_excluded=("image/svg", "image/heic", "image/heif"),
    fallback_globs=("*.jpg", "*.jpeg", "*.png", "*.gif", "*.webp", "*.tif", "*.tiff", "*.bmp",
                    "*.psd", "*.dds", "*.ico", "*.tga", "*.pcx", "*.jp2", "*.j2k", "*.mpo",
                    "*.ppm", "*.pgm", "*.pbm", "*.qoi", "*.icns", "*.sgi", "*.avif"),
)
RULES: dict[str, ContentRule] = {
    "image": _IMAGE,
    "phash": _IMAGE,
    "audio": ContentRule(
        mime_prefixes=("audio/",),
        fallback_globs=("*.mp3", "*.flac", "*.ogg", "*.oga", "*.opus", "*.m4a", "*.wav",
                        "*.aiff", "*.aif", "*.wma", "*.ape", "*.wv", "*.mpc"),
    ),
    "video": ContentRule(
        mime_prefixes=("video/",),
        fallback_globs=("*.mp4", "*.m4v", "*.mov", "*.mkv", "*.webm", "*.avi", "*.mpg",
                        "*.mpeg", "*.wmv", "*.ts", "*.m2ts", "*.3gp", "*.flv", "*.ogv"),
    ),
}
