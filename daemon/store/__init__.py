"""The database: peewee models, connect-by-URL, migrations and bulk operations.

Services open one `Store` and own their transactions through `write_tx`. The schema, the
migrations, the bulk paths (executemany, COPY) and the statements several services share live
here; a statement that belongs to one decision (a reconcile pass, the enrich step's work list,
`dupes`) is written beside it, in `?` dialect, through `Store.query` / `Store.execute`, which
translate it for PostgreSQL (`Store.sql`).

peewee imports psycopg2 as it is imported, whatever the database, and psycopg2 brings ssl,
uuid's and ipaddress's set-up with it: about a fifth of what `assetd status` executes on a
SQLite index (bench/README.md, "CLI start-up"). So this package, which every module that
reads the database imports first, imports peewee with psycopg2 hidden, unless something
already imported psycopg2; opening a PostgreSQL URL imports it then and hands it to peewee
(`pgdriver.py`).
"""

import sys


def _import_peewee_without_psycopg2() -> None:
    if "peewee" in sys.modules or "psycopg2" in sys.modules:
        return
    sys.modules["psycopg2"] = None  # type: ignore[assignment]  # `import psycopg2` fails
    try:
        import peewee  # noqa: F401
    finally:
        del sys.modules["psycopg2"]


_import_peewee_without_psycopg2()

from peewee import OperationalError  # noqa: E402

from daemon.store.db import NoIndexError, Store, redact_url, sqlite_path  # noqa: E402

__all__ = ["NoIndexError", "OperationalError", "Store", "redact_url", "sqlite_path"]
