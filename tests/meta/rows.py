"""Hand-built rows for unit tests of the passes and the metadata services."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from peewee import Table

from daemon.config import BUILTIN_ENRICHERS, Config, parse_config
from daemon.meta.indexed import IndexedFile
from daemon.scan.apply import path_text
from daemon.store import labels
from daemon.store.models import STATE_NEW, File, Insight, Library, Tag, database_proxy

HASH_A = "xxh128:" + "a" * 32
HASH_B = "xxh128:" + "b" * 32
HASH_C = "xxh128:" + "c" * 32


def make_config(db_url: str, root: Path, names: tuple[str, ...] = ("lib",),
                enrichers: list[dict[str, Any]] | None = None) -> Config:
    raw: dict[str, Any] = {
        "daemon": {"database": db_url},
        "library": [{"name": name, "path": str(root / name)} for name in names],
        "enricher": enrichers or [],
    }
    return parse_config(raw, "<test>")


def no_builtins(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """An enricher list with the built-ins switched off (plus `extra`)."""
    return [*({"name": name, "enabled": False} for name in BUILTIN_ENRICHERS), *extra]


def library(name: str = "lib") -> Library:
    return Library.create(name=name, root=f"/nowhere/{name}", host="h", created_at=time.time())


def file(lib: Library, rel: str | bytes, content_hash: str | None = HASH_A, *,
         state: str = STATE_NEW, missing_since: float | None = None,
         enricher_checksum: str | None = None, size: int = 1, mtime_ns: int = 1) -> File:
    rel_path = rel if isinstance(rel, bytes) else rel.encode()
    return File.create(
        library=lib, rel_path=rel_path, path_text=path_text(rel_path), size=size,
        mtime_ns=mtime_ns, inode=1, device=1, content_hash=content_hash,
        is_missing=missing_since is not None, missing_since=missing_since, state=state,
        checksum_label=label_id(enricher_checksum), first_seen=0, last_seen=0,
    )


def _labels() -> Table:
    return Table(labels.TABLE, ("id", "text")).bind(database_proxy)


def label_id(text: str | None) -> int | None:
    """The id of a label, created as needed (`store.labels`)."""
    if text is None:
        return None
    _labels().insert(text=text).on_conflict_ignore().execute()
    table = _labels()
    return table.select(table.id).where(table.text == text).scalar()


def checksum_of(row: File) -> str | None:
    """The enricher set checksum a file row holds, as text."""
    label = File.get_by_id(row.id).checksum_label
    table = _labels()
    return table.select(table.text).where(table.id == label).scalar()


def indexed(row: File) -> IndexedFile:
    lib = Library.get_by_id(row.library_id)
    return IndexedFile(lib.id, lib.name, row.rel_path, row.path_text, row.content_hash,
                       row.is_missing)


def tag(lib: Library, rel: str, content_hash: str | None, name: str) -> Tag:
    return Tag.create(library=lib, rel_path=rel.encode(), content_hash=content_hash, tag=name,
                      created_at=0.0)


def insight(content_hash: str | None, kind: str, *, generated_at: float, current: bool = True,
            lib: Library | None = None, rel: str | None = None, source: str = "user",
            enricher_checksum: str | None = None, value: str = "{}") -> Insight:
    return Insight.create(
        content_hash=content_hash, library=lib, rel_path=rel.encode() if rel else None,
        kind_label=label_id(kind), value=value, generated_at=generated_at, is_current=current,
        source_label=label_id(source), checksum_label=label_id(enricher_checksum),
    )


def state_of(row: File) -> str:
    return File.get_by_id(row.id).state


def current_insights(content_hash: str, kind: str) -> list[float]:
    return sorted(
        i.generated_at for i in Insight.select().where(
            (Insight.content_hash == content_hash) & (Insight.kind_label == label_id(kind))
            & Insight.is_current
        )
    )
