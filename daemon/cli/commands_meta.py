"""`tag`, `insight`, `dupes`, `reconcile`, `verify`, `prune` (metadata keyed by content)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Registered by the metadata commands as they land."""
