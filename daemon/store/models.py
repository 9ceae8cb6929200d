"""peewee models. Times are epoch seconds (floats) so both backends compare them alike, but
for a file's `first_seen` and `last_seen`, whole seconds (nothing reads their fraction; 4 B
in a SQLite row instead of 8, migration 8).

`rel_path` is the exact bytes of the path relative to the library root (`/`-separated): names
that are not valid UTF-8 must round-trip, and neither SQLite TEXT nor PostgreSQL text can hold
them. `path_text` is the same path for people and for glob matching in SQL, with undecodable
bytes shown as `\\xNN` escapes; stored as '' where it is `rel_path` decoded (`paths.py`: read
it through `paths.shown` / `paths.text_sql`).
"""

from __future__ import annotations

from peewee import (
    SQL,
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    SmallIntegerField,
    TextField,
)

from daemon.store import hashes

database_proxy = DatabaseProxy()

STATE_NEW = "new"
STATE_ENRICHING = "enriching"
STATE_READY = "ready"
# A file's state is stored as a small code, its name shown (`StateField`; raw SQL passes
# the code). SQLite stores 0 and 1 in no bytes: `ready`, the state of nearly every row, is 0,
# and `enriching` 1, so a new row does not shrink when it becomes `ready` (which left 1 B of
# slack a row in SQLite's pages).
STATE_CODES = {STATE_READY: 0, STATE_ENRICHING: 1, STATE_NEW: 2}
STATE_NAMES = {code: name for name, code in STATE_CODES.items()}
# Enricher checksums are stored as this many hex digits (`meta/enrichers.py` says why).
ENRICHER_CHECKSUM_DIGITS = 10


class PathField(BlobField):
    """Raw path bytes; psycopg2 hands bytea back as memoryview, callers want bytes."""

    def python_value(self, value):
        return bytes(value) if value is not None else None


class HashField(BlobField):
    """A content hash: `xxh128:` + 32 hex digits to Python, its 16-byte digest in the
    database (`hashes.py` says why). ORM queries convert on their own; raw SQL converts with
    `hashes.to_db` / `hashes.from_db`."""

    def db_value(self, value):
        return hashes.to_db(value)

    def python_value(self, value):
        return hashes.from_db(value)


class StateField(SmallIntegerField):
    """A file's lifecycle state: its name to Python, its code (`STATE_CODES`) stored."""

    def db_value(self, value):
        return STATE_CODES[value] if isinstance(value, str) else value

    def python_value(self, value):
        return STATE_NAMES[value] if value is not None else None


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField()


class Library(BaseModel):
    name = CharField(unique=True)
    root = TextField()
    host = CharField()
    online = BooleanField(null=True)
    offline_reason = TextField(null=True)
    last_scan_at = DoubleField(null=True)
    created_at = DoubleField()


class File(BaseModel):
    # No index of its own: (library, rel_path) serves it (migration 3).
    library = ForeignKeyField(Library, backref="files", on_delete="CASCADE", index=False)
    rel_path = PathField()
    path_text = TextField()
    size = BigIntegerField()
    mtime_ns = BigIntegerField()
    inode = BigIntegerField()
    device = BigIntegerField()
    content_hash = HashField(null=True, index=True)
    is_missing = BooleanField(default=False)
    missing_since = DoubleField(null=True)
    state = StateField(default=STATE_NEW)
    # The `label` of the enricher set checksum the file was settled under (migration 7).
    checksum_label = IntegerField(null=True)
    # Whole epoch seconds (migration 8): when a scan first wrote the row, and when a scan last
    # rewrote it, NULL until then (it is first_seen: 8 B a file saved).
    first_seen = BigIntegerField()
    last_seen = BigIntegerField(null=True)

    class Meta:
        # file_inode and file_state_checksum_label: migration 1 says why.
        indexes = ((("library", "rel_path"), True), (("inode",), False),
                   (("state", "checksum_label"), False))


class Tag(BaseModel):
    """A tag follows the bytes: (library, rel_path) where it was set, and the content hash."""

    library = ForeignKeyField(Library, on_delete="CASCADE")
    rel_path = PathField()
    content_hash = HashField(null=True, index=True)
    tag = CharField()
    created_at = DoubleField()

    class Meta:
        indexes = ((("library", "rel_path"), False), (("tag",), False))


class Insight(BaseModel):
    """Derived data keyed by content; at most one current row per (content_hash, kind)."""

    content_hash = HashField(null=True)
    # Only while content_hash is NULL (`insights.located`); no index of its own: the
    # partial insight_unhashed_path serves the look-ups by path (migration 4).
    library = ForeignKeyField(Library, null=True, on_delete="CASCADE", index=False)
    rel_path = PathField(null=True)
    # The value's JSON; '' when it is the label `value_label` (`labels.insight_value`).
    value = TextField()
    value_label = IntegerField(null=True)
    # The `label` id of its kind (migration 8; `labels.insight_kind_is` in SQL). After
    # value_label: PostgreSQL aligns an integer to 4 bytes, and after the 17-byte hash it
    # would cost 3 bytes of padding and push generated_at to the next 8 (8 B a row).
    kind_label = IntegerField()
    generated_at = DoubleField()
    is_current = BooleanField(default=True)
    # `label` ids (migration 7): who wrote it (an enricher's name, or `user`) and the
    # checksum of that enricher's config.
    source_label = IntegerField()
    checksum_label = IntegerField(null=True)

    class Meta:
        # is_current in the index: the collapse pass and "is this enricher done" read it
        # from the index alone (migration 3 says more).
        indexes = ((("content_hash", "kind_label", "is_current"), False),)


# By path only while the content is not hashed (an insight set on an unhashed file): the
# queries spell the condition as the index does, which SQLite needs to use a partial index.
Insight.add_index(
    Insight.index(Insight.library, Insight.rel_path, name="insight_unhashed_path",
                  where=SQL("content_hash IS NULL"))
)


class ScanRun(BaseModel):
    library = ForeignKeyField(Library, on_delete="CASCADE")
    host = CharField()
    started_at = DoubleField()
    finished_at = DoubleField()
    status = CharField()
    online = BooleanField()
    reason = TextField(null=True)
    scope = TextField()
    stats = TextField()


class DaemonProcess(BaseModel):
    """A heartbeat row per running daemon, shown by `assetd status`."""

    host = CharField()
    pid = IntegerField()
    started_at = DoubleField()
    last_tick = DoubleField(null=True)
    status = TextField(default="")

    class Meta:
        table_name = "daemon"
        indexes = ((("host", "pid"), True),)


ALL_MODELS = [SchemaVersion, Library, File, Tag, Insight, ScanRun, DaemonProcess]
