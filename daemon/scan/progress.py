"""What a scan reports while it runs: a module of its own, so the CLI can define its progress
bar without importing the scanner (and the hash pool, libmagic ...) for every command."""

from __future__ import annotations


class Progress:
    """What a scan reports while it runs; the CLI draws a bar, the daemon a STATUS= line."""

    def discovered(self, library: str, files: int) -> None:
        pass

    def hashing(self, library: str, files: int, total_bytes: int) -> None:
        pass

    def hashed_bytes(self, n: int) -> None:
        pass
