"""The database: peewee models, connect-by-URL, migrations and bulk operations.

Services open one `Store` and own their transactions through `write_tx`; nothing above this
package writes SQL.
"""

from daemon.store.db import NoIndexError, Store, redact_url, sqlite_path

__all__ = ["NoIndexError", "Store", "redact_url", "sqlite_path"]
