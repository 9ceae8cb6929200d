"""The two databases the bench runs assetd on: a SQLite file, and a PostgreSQL database of its own.

The PostgreSQL database (`assetd_bench_<pid>`) is created by the bench, dropped and created again
before every cold scan, and dropped at the end. It is driven with the `psql` client, so the bench
needs no database driver of its own and works with whatever driver the measured build uses.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from measure import BenchError

DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


class Sqlite:
    name = "sqlite"

    def __init__(self, workdir: Path):
        self.path = workdir / "index.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def reset(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def size(self, files: int) -> dict:
        """File size with the WAL folded in: a checkpoint first, then main file + WAL."""
        with sqlite3.connect(self.path, timeout=60) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        total = sum(Path(f"{self.path}{suffix}").stat().st_size
                    for suffix in ("", "-wal") if Path(f"{self.path}{suffix}").exists())
        return {"database_bytes": total, "bytes_per_file": round(total / files, 1)}

    def drop(self) -> None:
        self.reset()


class Postgres:
    name = "postgres"

    def __init__(self, server_url: str):
        self.server_url = server_url.rstrip("/")
        self.database = f"assetd_bench_{os.getpid()}"

    @property
    def url(self) -> str:
        return f"{self.server_url}/{self.database}"

    def _psql(self, sql: str, dbname: str = "postgres") -> str:
        completed = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-d", f"{self.server_url}/{dbname}", "-c", sql],
            capture_output=True, text=True,
        )
        if completed.returncode != 0:
            raise BenchError(f"psql {sql!r}: {completed.stderr.strip()}")
        return completed.stdout.strip()

    def reset(self) -> None:
        self.drop()
        self._psql(f'CREATE DATABASE "{self.database}"')

    def drop(self) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def size(self, files: int) -> dict:
        database_bytes = int(self._psql(f"SELECT pg_database_size('{self.database}')"))
        tables = self._psql(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            self.database,
        )
        per_table = {}
        for line in tables.splitlines():
            name, size = line.split("|")
            per_table[name] = int(size)
        relations = sum(per_table.values())
        return {
            "database_bytes": database_bytes,
            "relations_bytes": relations,
            "bytes_per_file": round(relations / files, 1),
            "tables": dict(sorted(per_table.items(), key=lambda item: -item[1])),
        }
