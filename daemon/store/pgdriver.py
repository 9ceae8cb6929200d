"""psycopg2 for a peewee that was imported without it (see the package's docstring).

peewee binds the driver at its own import: the module global `psycopg2` (None when the import
failed), `pg_extensions`, `Json_pg2`, a UUID adapter registered, and three transaction-status
constants on `Psycopg2Adapter`. `load()` does what that import would have done, once, before
a PostgreSQL database is opened; where peewee found psycopg2 itself it changes nothing.
"""

from __future__ import annotations

from types import ModuleType


def load() -> ModuleType:
    """psycopg2, known to peewee."""
    import peewee
    import psycopg2
    import psycopg2.extensions
    import psycopg2.extras

    if peewee.psycopg2 is None:
        peewee.psycopg2 = psycopg2
        peewee.pg_extensions = psycopg2.extensions
        peewee.Json_pg2 = psycopg2.extras.Json
        psycopg2.extras.register_uuid()
        adapter = peewee.Psycopg2Adapter
        adapter.txn_idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        adapter.txn_inerror = psycopg2.extensions.TRANSACTION_STATUS_INERROR
        adapter.txn_unknown = psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN
    return psycopg2
