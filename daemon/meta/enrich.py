"""Enrichers: placeholder until the metadata issue lands (runs nothing)."""

from __future__ import annotations

from daemon.config import Config
from daemon.store import Store


def enrich_libraries(store: Store, config: Config, names: list[str]) -> int:
    return 0
