"""The store: peewee models and the only SQL. Sync functions that never await (LIBRARY-NOTES).

SQLite by default (WAL, busy_timeout, synchronous=NORMAL); PostgreSQL by DSN. Schema changes
are numbered migrations applied in order at open, from version 1 on.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import peewee as pw

proxy = pw.DatabaseProxy()

# Outbox states (DESIGN rule 4)
PENDING, SENDING, SENT, DELIVERED, FAILED = "pending", "sending", "sent", "delivered", "failed"
CANCELLED, EXPIRED, UNKNOWN = "cancelled", "expired", "unknown"
NO_RECEIPT = "no-receipt"      # accepted by the gateway, no receipt within the configured time
FINAL = {DELIVERED, FAILED, CANCELLED, EXPIRED}


class Base(pw.Model):
    class Meta:
        database = proxy


class SchemaVersion(Base):
    version = pw.IntegerField()
    applied_at = pw.DoubleField()


class Call(Base):
    box = pw.CharField(default="")            # the PBX box's id ([pbx] id): one service per box
    # unique per box (Asterisk's Uniqueids repeat across boxes): the unique (call_id, box)
    # index of store/lean_indexes.py. The indexes this model once declared and migrations 27
    # and 30 drop are not declared here, so a new store never makes them (lean_indexes.py)
    call_id = pw.CharField()
    pbx = pw.CharField()
    caller = pw.CharField()                    # E.164 where it parses, else as the PBX gave it
    caller_raw = pw.CharField()
    called = pw.CharField()
    line = pw.CharField(default="")
    direction = pw.CharField()
    missed = pw.BooleanField()
    reason = pw.CharField()
    why = pw.TextField(default="")
    voicemail_left = pw.BooleanField(null=True)
    recovered = pw.BooleanField(default=False)
    started_at = pw.DoubleField(null=True)
    ended_at = pw.DoubleField(null=True)
    record = pw.TextField()                    # the CallRecord as JSON, for explain
    created_at = pw.DoubleField()
    answered = pw.BooleanField(default=False)  # a person answered (inbound or outbound)


class DecisionRow(Base):
    call = pw.ForeignKeyField(Call, backref="decisions", on_delete="CASCADE")
    action = pw.CharField()
    checks = pw.TextField()                    # JSON list of {name, ok, detail}
    line = pw.CharField(default="")
    created_at = pw.DoubleField()
    template = pw.CharField(default="")        # the template's fingerprint (settings.template_version)

    class Meta:
        table_name = "decision"


class Message(Base):
    """The outbox (direction out) and callers' replies (direction in)."""
    call = pw.ForeignKeyField(Call, null=True, backref="messages", on_delete="SET NULL")
    direction = pw.CharField(default="out")
    kind = pw.CharField(default="missed-call")   # missed-call | reply | confirmation | help | manual | resend | test
    line = pw.CharField(default="")
    peer = pw.CharField()                        # the caller's E.164
    body = pw.TextField()
    state = pw.CharField()                       # (state, box, due_at): store/lean_indexes.py
    due_at = pw.DoubleField()
    attempts = pw.IntegerField(default=0)
    transport = pw.CharField(default="")
    transport_id = pw.CharField(default="")     # partial index: store/lean_pages.py
    error = pw.TextField(default="")
    created_at = pw.DoubleField()
    updated_at = pw.DoubleField()
    calls_missed = pw.IntegerField(default=1)
    note = pw.TextField(default="")            # why it was cancelled / expired / held
    ref = pw.IntegerField(null=True)           # a follow-up's or a resend's original text
    written_at = pw.DoubleField(null=True)     # when its first byte was handed to the transport
    box = pw.CharField(default="")             # the box whose service sends it (and got the reply)
    account = pw.CharField(default="")         # the gateway account it went out through


PURGE_MARK = "purged"          # Setting key: when the last purge deleted rows


class Setting(Base):
    """Small service-wide switches (e.g. paused), shared by every process on the store."""
    key = pw.CharField(unique=True)
    value = pw.TextField()
    set_at = pw.DoubleField()


class HoursOverride(Base):
    line = pw.CharField(unique=True)
    mode = pw.CharField()                      # open | closed (auto = no row)
    set_at = pw.DoubleField()
    until = pw.DoubleField(null=True)          # epoch seconds it ends (None: until changed by hand)


MODELS = [Call, DecisionRow, Message, HoursOverride]


def _v1(db):
    """Only for history: a new store is created at the latest version (see migrate)."""


def _v2(db):
    """Timing: collapsed calls per text, why a row ended, whether a call reached a person."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    run(m.add_column("message", "calls_missed", pw.IntegerField(default=1)),
        m.add_column("message", "note", pw.TextField(default="")),
        m.add_column("message", "ref", pw.IntegerField(null=True)),
        m.add_column("call", "answered", pw.BooleanField(default=False)))
    db.create_tables([Setting])


class Consent(Base):
    """Every consent event, kept for proof (purge leaves them): core/policy/consent.py replays them."""
    number = pw.CharField()          # (number, kind): store/fast.py
    kind = pw.CharField()            # inbound-call | opt-out | opt-in | confirmation
    at = pw.DoubleField()            # partial index, not of inbound-call events: store/lean_consent.py
    scope = pw.CharField(default="business")
    line = pw.CharField(default="")
    source = pw.TextField(default="")
    confirms = pw.CharField(default="")
    lang = pw.CharField(default="en")


def _v3(db):
    db.create_tables([Consent])


def _v4(db):
    from .callbacks import Callback      # callbacks.py imports this module: import late
    db.create_tables([Callback], safe=True)


def _v5(db):
    """Times as double precision: peewee's FloatField is a 4-byte REAL on PostgreSQL, which
    rounds epoch seconds to minutes (SQLite's REAL was always 8 bytes)."""
    if isinstance(db, pw.SqliteDatabase):
        return
    from .callbacks import Callback
    for model in MODELS + [Callback, SchemaVersion]:
        for f in model._meta.sorted_fields:
            if isinstance(f, pw.DoubleField):
                db.execute_sql(f'ALTER TABLE "{model._meta.table_name}" ALTER COLUMN "{f.column_name}" '
                               'TYPE double precision')


def _v6(db):
    """When a text was written: a crash leaves `sending` rows, and only a written one may be unknown."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    run(m.add_column("message", "written_at", pw.DoubleField(null=True)))


MODELS.extend([Setting, Consent])
MIGRATIONS = [(1, _v1), (2, _v2), (3, _v3), (4, _v4), (5, _v5), (6, _v6)]


def _v9(db):
    """`hours set` overrides end (at the line's next change of state, or --until)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    run(m.add_column("hoursoverride", "until", pw.DoubleField(null=True)))


MIGRATIONS.append((9, _v9))


def _v13(db):
    """The front-desk inbox: accounts, sessions, conversation states (store/web.py)."""
    from .web import create_tables
    create_tables(db)


MIGRATIONS.append((13, _v13))

# what a new store creates besides MODELS: each module with tables of its own adds its
# create_tables(db) here and a migration step for stores made before it (they may run in any
# order: a step creates its tables with safe=True)
NEW_STORE_TABLES = []


def _web_tables(db):
    from .web import create_tables
    create_tables(db)


NEW_STORE_TABLES.append(_web_tables)


def _v14(db):
    """Several PBX boxes on one store: rows name their box, a call id is unique per box, and a
    text records its gateway account (message ids repeat across accounts). Rows of before keep
    box '' (see Store.adopt_unboxed)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    run(m.add_column("call", "box", pw.CharField(default="")),
        m.add_column("message", "box", pw.CharField(default="")),
        m.add_column("message", "account", pw.CharField(default="")))
    # the old unique call id: peewee's index; a store's own UNIQUE constraint stays on SQLite,
    # where one store serves one box anyway
    db.execute_sql('DROP INDEX IF EXISTS "call_call_id"')
    if not isinstance(db, pw.SqliteDatabase):
        db.execute_sql('ALTER TABLE "call" DROP CONSTRAINT IF EXISTS "call_call_id_key"')
    run(m.add_index("call", ("call_id",), False),
        m.add_index("call", ("box", "call_id"), True),
        m.add_index("message", ("box", "state", "due_at"), False))


MIGRATIONS.append((14, _v14))


def _v15(db):
    """Call back from the inbox: the callback table says who asked and which call it made."""
    from .deskphones import add_columns
    add_columns(db)


MIGRATIONS.append((15, _v15))


def _desk_tables(db):
    """The front desk's locks, notes, saved replies, notification choices, ownership rules (store/desk.py)."""
    from .desk import create_tables
    create_tables(db)


MIGRATIONS.append((16, _desk_tables))
NEW_STORE_TABLES.append(_desk_tables)


def _v17(db):
    """The admin page's settings and their history (store/settings.py); which template wrote
    each text (explain)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run
    from .settings import create_tables
    create_tables(db)
    if "template" in [c.name for c in db.get_columns("decision")]:
        return            # safe to run again, like every step (a store that was made new has it)
    m = SqliteMigrator(db) if isinstance(db, pw.SqliteDatabase) else PostgresqlMigrator(db)
    run(m.add_column("decision", "template", pw.CharField(default="")))


def _settings_tables(db):
    from .settings import create_tables
    create_tables(db)


@lru_cache(maxsize=64)
def _template_version(source: str) -> str:
    """Per decision that texts; a line's few templates hash once each (a sha256 and an import
    per call before)."""
    from pbx_textback.admin.settings import template_version
    return template_version(source) if source else ""


MIGRATIONS.append((17, _v17))
NEW_STORE_TABLES.append(_settings_tables)


def _v18(db):
    """The inbox's list as one row per caller, kept by triggers (store/inbox.py); voicemail
    recordings for its player (store/voicemail.py)."""
    from . import inbox, voicemail
    inbox.create_tables(db)
    voicemail.create_tables(db)


MIGRATIONS.append((18, _v18))
NEW_STORE_TABLES.append(_v18)


def _hook_tables(db):
    from .hooks import create_tables
    create_tables(db)


def _api_tables(db):
    from .api import create_tables
    create_tables(db)


# webhooks' events and deliveries (store/hooks.py); the REST API's tokens (store/api.py)
MIGRATIONS.append((20, _hook_tables))
MIGRATIONS.append((21, _api_tables))
NEW_STORE_TABLES.extend([_hook_tables, _api_tables])


def _v23(db):
    """The hot path's indexes and the per-caller consent summary (store/fast.py)."""
    from .fast import migrate_v23
    migrate_v23(db)


def _fast_tables(db):
    from .fast import create_tables
    create_tables(db)


MIGRATIONS.append((23, _v23))
NEW_STORE_TABLES.append(_fast_tables)


def _v24(db):
    """Call backs placed by the box that owns the caller's line (store/boxcalls.py)."""
    from .boxcalls import add_box_column
    add_box_column(db)


MIGRATIONS.append((24, _v24))


def _seen_tables(db):
    """What each agent has seen: conversations opened, views marked seen (store/seen.py)."""
    from .seen import create_tables
    create_tables(db)


MIGRATIONS.append((25, _seen_tables))
NEW_STORE_TABLES.append(_seen_tables)


def _v26(db):
    """The inbox summary's triggers add an inserted call or text to the caller's row instead of
    recounting the caller's whole history (store/inbox.py). SQLite keeps a trigger of the same
    name as it was, so they are dropped and made again; a new store has them from _v18."""
    from . import inbox
    inbox.drop_triggers(db)
    inbox.create_triggers(db)


MIGRATIONS.append((26, _v26))


def _v27(db):
    """Drop the indexes that repeat another's leading columns (store/fast.py): every call's
    insert paid for them. On SQLite the inbox's insert triggers become one upsert each
    (store/inbox_upsert.py; a trigger of the same name is kept as it was, so made again)."""
    from . import inbox
    from .fast import drop_redundant_indexes
    drop_redundant_indexes(db)
    inbox.drop_triggers(db)
    inbox.create_triggers(db)


MIGRATIONS.append((27, _v27))       # a new store never makes those indexes (the models no longer declare them)


def _v28(db):
    """The inbox summary's triggers make the rows a rebuild makes, no more: none for a caller
    with no number (SQLite counted a withheld caller's missed call as an open conversation) or
    for a call neither missed nor answered, and an update or a delete that takes a caller's last
    counted row drops the caller's row and its count (store/inbox.py). Then one rebuild puts
    the rows and counts of a store made before right."""
    from . import inbox
    inbox.drop_triggers(db)
    inbox.create_triggers(db)
    inbox.rebuild(db)


MIGRATIONS.append((28, _v28))


def _v30(db):
    """Four indexes fewer for every missed call to write (store/lean_indexes.py)."""
    from .lean_indexes import migrate_v30
    migrate_v30(db)


def _lean_indexes(db):
    from .lean_indexes import create_indexes
    create_indexes(db)


MIGRATIONS.append((30, _v30))
NEW_STORE_TABLES.append(_lean_indexes)    # a new store: the two indexes, nothing to drop


def _v31(db):
    """Pages fewer per decision: call (called) dropped, consentlastcall WITHOUT ROWID on
    SQLite, call (caller_raw) only where it is not the E.164 (store/lean_writes.py; a new
    store is made so)."""
    from .lean_writes import migrate_v31
    migrate_v31(db)


MIGRATIONS.append((31, _v31))


def _v32(db):
    """Pages fewer per text: transport_id indexed only where set, a caller's texts only while
    pending, snooze ends only of snoozed conversations; a line's calls indexed
    (store/lean_pages.py; a new store is made so)."""
    from .lean_pages import migrate_v32
    migrate_v32(db)


def _lean_pages(db):
    from .lean_pages import create_indexes
    create_indexes(db)


MIGRATIONS.append((32, _v32))
NEW_STORE_TABLES.append(_lean_pages)


def _replies_index(db):
    """Callers' replies by id, indexed alone: the reply pollers no longer walk every text
    (store/replies_index.py); a new store is made so."""
    from .replies_index import create_indexes
    create_indexes(db)


MIGRATIONS.append((33, _replies_index))
NEW_STORE_TABLES.append(_replies_index)


def _v36(db):
    """/metrics' text totals kept by triggers as texts change, and a line's newest text by an
    index (store/text_tally.py, store/boxes.py)."""
    from . import boxes, text_tally
    text_tally.migrate(db)
    boxes.create_index(db)


def _totals_tables(db):
    from . import boxes, text_tally
    text_tally.create(db)
    boxes.create_index(db)


MIGRATIONS.append((36, _v36))
NEW_STORE_TABLES.append(_totals_tables)


def _lean_consent(db):
    """A page fewer per missed call: consent (at) no longer indexes the inbound-call events
    (store/lean_consent.py; the full index goes if a store has it, so a new store is made so too)."""
    from .lean_consent import migrate_v37
    migrate_v37(db)


MIGRATIONS.append((37, _lean_consent))
NEW_STORE_TABLES.append(_lean_consent)


def _inbox_hold(db):
    """A purge's slice remakes the inbox rows of the callers it touched and holds the per-row
    delete triggers off by a row in its own transaction, not by dropping them (store/purge.py):
    the triggers are made again to read it; a new store has them from _v18."""
    from . import inbox
    inbox.drop_triggers(db)
    inbox.create_triggers(db)


MIGRATIONS.append((38, _inbox_hold))


def _purged_counts(db):
    """/metrics' counters keep what purges delete (store/purged.py): they never go down."""
    from . import purged
    purged.create(db)


MIGRATIONS.append((39, _purged_counts))
NEW_STORE_TABLES.append(_purged_counts)


def default_box() -> str:
    """A box's id when [pbx] id is not set: its host name (stable on one box)."""
    import socket
    return socket.gethostname() or "pbx"


# a receipt's state -> the text's final state (None: not final, noted only)
_DLR_FINAL = {"delivered": DELIVERED, "failed": FAILED, "expired": FAILED, "rejected": FAILED,
              "undeliverable": FAILED, "deleted": FAILED}


class Store:
    def __init__(self, db: pw.Database, box: str = ""):
        self.db = db
        self.box = box or default_box()      # this service's PBX box: the rows it sends
        self.accounts: dict[str, str] = {}   # transport kind -> account label (senders.accounts)

    @property
    def is_sqlite(self) -> bool:
        return isinstance(self.db, pw.SqliteDatabase)

    @contextmanager
    def snapshot(self):
        """Reads that see one state of the store, whatever commits meanwhile (SQLite: a read
        transaction; PostgreSQL: REPEATABLE READ)."""
        with self.db.atomic():
            if not self.is_sqlite:
                self.db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield

    @contextmanager
    def write(self):
        """A write transaction: IMMEDIATE on SQLite so two writers queue instead of failing."""
        with self.db.atomic("IMMEDIATE") if self.is_sqlite else self.db.atomic():
            yield

    def takes_writes(self, wait_ms: int = 100) -> bool:
        """Whether a write could start now, waiting at most wait_ms for SQLite's lock instead
        of the busy timeout (a look before writing again what it refused). PostgreSQL: True,
        its refusals are quick."""
        if not self.is_sqlite:
            return True
        busy = self.db.execute_sql("PRAGMA busy_timeout").fetchone()[0]
        self.db.execute_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
        try:
            with self.write():
                return True
        except pw.OperationalError:
            return False
        finally:
            self.db.execute_sql(f"PRAGMA busy_timeout = {int(busy)}")

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    # ---- calls and decisions -----------------------------------------------------------------
    def latest_call_at(self) -> float | None:
        return Call.select(pw.fn.MAX(Call.created_at)).scalar()

    def has_call(self, call_id: str) -> bool:
        from .fast import seen
        return seen(self, call_id)

    def last_text_at(self, peer: str, line: str) -> float | None:
        row = (Message.select(pw.fn.MAX(Message.created_at)).where(
            (Message.peer == peer) & (Message.line == line) & (Message.direction == "out")
            & (Message.kind == "missed-call") & (Message.state != CANCELLED)).scalar())
        return row

    def record_verdict(self, verdict, *, now: float, consent=None, checked: bool = False) -> tuple[int, int | None]:
        """Call + decision + (when texting) its outbox row, in one transaction. Idempotent per
        call_id: a call seen twice (replayed, reconciled) keeps its first decision and is
        never texted twice. consent: the caller's inbound-call event, in the same transaction.
        checked: the caller has just read that the call is new (fast.record_verdict)."""
        from .fast import record_verdict
        return record_verdict(self, verdict, now=now, consent=consent, checked=checked)

    # ---- outbox ------------------------------------------------------------------------------
    def claim_due(self, now: float, limit: int = 20) -> list[Message]:
        """pending rows that are due -> sending, oldest due first. An attempt is counted when
        the text is written (mark_written), not here: a claimed text may never leave."""
        from .fast import claim_due
        return claim_due(self, now, limit)

    def mark_written(self, msg_id: int, now: float) -> bool:
        """The transport is about to write the text's first byte: from here a crash or a lost
        connection leaves its fate unknown. False when the row is no longer ours to send."""
        from .fast import mark_written
        return mark_written(self, msg_id, now)

    def due_rows(self, now: float, limit: int, skip=()) -> list[Message]:
        """The outbox worker's due rows, not yet taken (store/fast.py: taken at the last look)."""
        from .fast import due_rows
        return due_rows(self, now, limit, set(skip))

    def take_written(self, msg_id: int, now: float) -> bool:
        """pending -> sending, written now, in one transaction; False: not ours to send."""
        from .fast import take_written
        return take_written(self, msg_id, now)

    def take_unlooked(self, msg_id: int, now: float) -> bool:
        from .fast import take_unlooked
        return take_unlooked(self, msg_id, now)

    def return_unwritten(self, ids, now: float) -> int:
        """Claimed texts that were never written (the service is stopping): back to pending."""
        ids = list(ids)
        if not ids:
            return 0
        with self.write():
            return Message.update(state=PENDING, updated_at=now).where(
                Message.id.in_(ids) & (Message.state == SENDING) & Message.written_at.is_null()).execute()

    def set_state(self, msg_id: int, state: str, *, now: float, transport: str = "",
                  transport_id: str = "", error: str = "", due_at: float | None = None,
                  note: str = "", only_from: str | None = None) -> bool:
        """only_from: change the row only while it is in that state (a receipt that came
        before the submit's answer has already settled it). False when nothing changed."""
        fields = {"state": state, "updated_at": now}
        if note:
            fields["note"] = note
        if transport:
            fields["transport"] = transport
        if transport_id:
            fields["transport_id"] = transport_id
        if error or state in (SENT, DELIVERED):
            fields["error"] = error
        if due_at is not None:
            fields["due_at"] = due_at
        if state == PENDING:
            fields["written_at"] = None
        from .fast import set_state
        return set_state(self, msg_id, fields, only_from)

    def recover_interrupted(self, now: float) -> tuple[int, int]:
        """Rows left in `sending` by a stop or a crash: (back to pending, unknown). Only a text
        that was written may be unknown (shown, never resent silently); one never written
        goes back to the queue."""
        mine = Message.box == self.box       # another box's service may be sending its own right now
        with self.write():
            # send-test's own row is its process's to send, never the service's
            Message.update(state=FAILED, updated_at=now, error="send-test stopped before it wrote the text").where(
                (Message.state == SENDING) & Message.written_at.is_null() & (Message.kind == "test") & mine).execute()
            back = Message.update(state=PENDING, updated_at=now).where(
                (Message.state == SENDING) & Message.written_at.is_null() & mine).execute()
            unknown = Message.update(state=UNKNOWN, updated_at=now,
                                     error="written, then the service stopped before the answer").where(
                (Message.state == SENDING) & mine).execute()
        return back, unknown

    def adopt_unboxed(self, now: float) -> int:
        """Texts queued before stores named boxes (box ''): this service's to send. Run at
        start-up; with several boxes, upgrade them one at a time (README)."""
        with self.write():
            return Message.update(box=self.box, updated_at=now).where(
                (Message.box == "") & (Message.direction == "out")
                & Message.state.in_([PENDING, SENDING])).execute()

    RESENDABLE = (UNKNOWN, FAILED, EXPIRED, "no-receipt")

    def resend(self, msg_id: int, now: float) -> int:
        """`pbx-textback resend ID`: a new row of kind `resend` referencing the original, so the
        copy is on record as the admin's choice. Only for a text that may not have arrived;
        raises ValueError (saying why) for any other."""
        with self.write():
            m = Message.get_or_none(Message.id == msg_id)
            if m is None or m.direction != "out":
                raise ValueError(f"no outgoing text #{msg_id} in the store")
            if m.state == DELIVERED:
                raise ValueError(f"text #{msg_id} was delivered (receipt from the gateway): "
                                 "resending it would text the caller twice")
            if m.state not in self.RESENDABLE:
                raise ValueError(f"text #{msg_id} is {m.state}: only an unknown, failed, expired or "
                                 "no-receipt text can be resent")
            again = (Message.select(Message.id).where(
                (Message.kind == "resend") & (Message.ref == msg_id) & (Message.state.in_([PENDING, SENDING])))
                .first())
            if again is not None:
                raise ValueError(f"text #{msg_id} is already being resent as #{again.id}")
            return Message.create(box=m.box or self.box, call=m.call_id, direction="out", kind="resend", line=m.line, peer=m.peer,
                                  body=m.body, state=PENDING, due_at=now, created_at=now, updated_at=now,
                                  calls_missed=m.calls_missed, ref=m.id,
                                  note=f"resent by hand: copy of #{m.id} ({m.state})").id

    def messages_to(self, peer: str) -> list[dict]:
        """Every message to and from a number (confirmations, help, manual texts and resends
        too, not only those of a call), for explain."""
        return [_message_dict(m) for m in Message.select().where(Message.peer == peer).order_by(Message.id)]

    def last_line_for(self, peer: str) -> str:
        """The line this number last wrote to or called ('' when neither): a text that is no
        call's answer (a STOP confirmation) goes out from there."""
        wrote = (Message.select(Message.line, Message.created_at).where(
            (Message.peer == peer) & (Message.direction == "in") & (Message.line != ""))
            .order_by(Message.created_at.desc()).first())
        called = (Call.select(Call.line, Call.created_at).where(
            (Call.caller == peer) & (Call.direction == "inbound") & (Call.line != ""))
            .order_by(Call.created_at.desc()).first())
        best = max((r for r in (wrote, called) if r is not None), key=lambda r: r.created_at, default=None)
        return best.line if best is not None else ""

    def next_due(self) -> float | None:
        return Message.select(pw.fn.MIN(Message.due_at)).where(
            (Message.state == PENDING) & (Message.direction == "out") & (Message.box == self.box)).scalar()

    def message(self, msg_id: int) -> Message | None:
        return Message.get_or_none(Message.id == msg_id)

    # ---- timing: collapse, reach, replies ------------------------------------------------------
    def pending_for(self, peer: str, line: str) -> Message | None:
        return (Message.select(Message.id, Message.calls_missed).where((Message.peer == peer) & (Message.line == line)
                                       & (Message.state == _PENDING_SQL) & (Message.kind == "missed-call"))
                .order_by(Message.id).first())

    def cancel_pending(self, peer: str, note: str, now: float) -> int:
        """The caller was reached: every text still waiting for them is cancelled, with why."""
        with self.write():
            return Message.update(state=CANCELLED, note=note, updated_at=now).where(
                (Message.peer == peer) & (Message.direction == "out")
                & (Message.state == _PENDING_SQL) & (Message.kind != "confirmation")).execute()

    def reached_since(self, peer: str, since: float) -> str:
        """A call after `since` in which a person spoke with this number, as 'call ID'."""
        from .fast import reached_since
        return reached_since(self, peer, since)

    def replied_since(self, peer: str, since: float) -> bool:
        return Message.select().where((Message.peer == peer) & (Message.direction == "in")
                                      & (Message.created_at > since)).exists()

    def add_follow_up(self, original: Message, body: str, due_at: float, now: float) -> int:
        with self.write():
            return Message.create(box=original.box or self.box, call=original.call_id, direction="out", kind="follow-up",
                                  line=original.line, peer=original.peer, body=body, state=PENDING,
                                  due_at=due_at, created_at=now, updated_at=now, ref=original.id).id

    def expire_overdue(self, now: float, max_age_s: float) -> int:
        with self.write():
            return Message.update(state=EXPIRED, updated_at=now,
                                  note=f"due over {max_age_s / 60:.0f} min ago when the service came back").where(
                (Message.state == PENDING) & (Message.direction == "out") & (Message.box == self.box)
                & (Message.due_at < now - max_age_s)).execute()

    def note_voicemail(self, peer: str, since: float, note: str) -> str | None:
        """A voicemail mail arrived for a call we already decided: mark the message as left."""
        with self.write():
            call = (Call.select().where((Call.caller == peer) & (Call.created_at >= since)
                                        & (Call.direction == "inbound"))
                    .order_by(Call.created_at.desc()).first())
            if call is None:
                return None
            rec = json.loads(call.record)
            rec["notes"] = list(rec.get("notes", [])) + [note]
            Call.update(voicemail_left=True, record=json.dumps(rec)).where(Call.id == call.id).execute()
            return call.call_id

    # ---- consent and compliance facts -----------------------------------------------------------
    def consent_history(self, number: str | None = None, since: float | None = None) -> list:
        from ..core.policy.consent import ConsentEvent
        q = Consent.select()
        if number is not None:
            q = q.where(Consent.number == number)
        if since is not None:
            q = q.where(Consent.at >= since)
        return [ConsentEvent(c.kind, c.number, c.at, c.scope, c.line, c.source, c.confirms, c.lang, str(c.id))
                for c in q.order_by(Consent.at, Consent.id)]

    def add_consent(self, ev) -> int:
        """Call inside write() when it must be atomic with other rows."""
        from .fast import add_consent
        return add_consent(self, ev)

    def consent_standing(self, number: str) -> list:
        """The events that decide `number`'s consent standing (not its whole history)."""
        from .fast import consent_standing_history
        return consent_standing_history(self, number)

    AUTOMATED = ("missed-call", "follow-up", "manual")

    def auto_text_times(self, peer: str, since: float) -> list[float]:
        """When automated texts to this number were queued (pending ones too: a second
        concurrent missed call must see the first)."""
        from .fast import auto_text_times
        return auto_text_times(self, peer, since)

    def texts_since(self, since: float) -> int:
        from .fast import texts_since
        return texts_since(self, since)

    def last_help_at(self, peer: str) -> float | None:
        return Message.select(pw.fn.MAX(Message.created_at)).where(
            (Message.peer == peer) & (Message.kind == "help")).scalar()

    def add_message(self, **fields) -> int:
        """Call inside write() when it must be atomic with other rows."""
        fields.setdefault("box", self.box)
        fields.setdefault("created_at", fields.get("due_at", 0.0))
        fields.setdefault("updated_at", fields["created_at"])
        return Message.create(**fields).id

    def latest_call_from(self, peer: str) -> Call | None:
        return (Call.select().where((Call.caller == peer) & (Call.direction == "inbound"))
                .order_by(Call.created_at.desc()).first())

    # ---- records and retention ----------------------------------------------------------------
    def purge(self, before: float) -> dict:
        """Delete calls, decisions and messages older than `before`, in slices of about
        purge.CLI_SLICE_S each (the CLI's; the service's are shorter: store/purge.py). Consent
        events stay: they are the proof of why a number was (not) texted."""
        from .purge import purge
        return purge(self, before)

    def purge_count(self, before: float) -> dict:
        """What purge(before) would delete, deleting nothing (purge --dry-run, the question)."""
        old_calls = Call.select(Call.id).where(Call.created_at < before)
        return {"calls": old_calls.count(),
                "decisions": DecisionRow.select().where(DecisionRow.call.in_(old_calls)).count(),
                "messages": Message.select().where((Message.created_at < before)
                                                   & (Message.state.not_in([PENDING, SENDING]))).count()}

    def export_number(self, peer: str) -> dict:
        """Everything we hold about one number (a data-subject request)."""
        msgs = [_message_dict(m) for m in Message.select().where(Message.peer == peer).order_by(Message.id)]
        consent = [dict(e.__dict__) for e in self.consent_history(peer)]
        return {"number": peer, "calls": self.calls_for(peer), "messages": msgs, "consent": consent}

    def mark_sent(self, msg_id: int, *, now: float, transport: str, transport_id: str) -> None:
        """The submit was accepted. A receipt may already have come in (a fast SMSC): never
        step back from delivered/failed to sent."""
        from .fast import mark_sent
        mark_sent(self, msg_id, now=now, transport=transport, account=self.accounts.get(transport, transport),
                  transport_id=transport_id)

    def apply_dlr(self, keys, state: str, error: str, now: float, msg_id: int | None = None,
                  transport: str = "smpp") -> int:
        """A delivery receipt: the message this process submitted (msg_id, known before the
        outbox has stored the SMSC's id), else the one whose transport id (any part) matches
        among the texts sent through this service's account (ids repeat across accounts).
        keys: the ids to look by, or a function that makes them (called only when the row id
        does not settle it: the common receipt needs none)."""
        final = _DLR_FINAL.get(state)
        if msg_id is not None:
            from .fast import dlr_by_id
            if dlr_by_id(self, msg_id, final, state, error, now):
                return 1
        if callable(keys):
            keys = keys()
        from .fast import dlr_by_gateway_id, receipt_error
        account = self.accounts.get(transport, transport)
        ours = Message.account.in_([account, ""])
        for k in keys:
            # the exact id first (indexed, one statement): a one-part text, the common case; then
            # the id as one part of several (a scan, so only when the exact one finds nothing)
            n = dlr_by_gateway_id(self, k, account, final, state, error, now)
            if n:
                return n
            rows = list(Message.select().where(
                (Message.direction == "out") & ours & (Message.transport_id != "")   # the partial index's rows
                & (Message.transport_id.startswith(k + ",") | Message.transport_id.endswith("," + k)
                   | Message.transport_id.contains("," + k + ","))))
            if not rows:
                continue
            with self.write():
                for m in rows:
                    if final is None:
                        Message.update(note=f"receipt: {state}", updated_at=now).where(Message.id == m.id).execute()
                    elif m.state != FAILED:     # one failed part fails the text
                        Message.update(state=final, updated_at=now, error=receipt_error(final, state, error)) \
                            .where(Message.id == m.id).execute()
            return len(rows)
        return 0

    # ---- late evidence and missing receipts (SMPP) ---------------------------------------------
    def resolve_unknown(self, *, now: float, state: str, evidence: str, msg_id: int | None = None,
                        peer: str = "", sender: str = "", text: str = "", transport_id: str = "",
                        error: str = "") -> int | None:
        """Late evidence about a text whose fate was unknown: a late submit_sm_resp (msg_id
        known) or a receipt whose message id we never learned, matched to an `unknown` (else
        a still-`sending`) row by recipient, sender and the receipt's `text:` (the first
        characters of the text; '?' stands for a character the gateway could not show).
        state: sent | delivered | failed. Returns the row's id, or None."""
        new = {"delivered": DELIVERED, "failed": FAILED}.get(state, SENT)
        if msg_id is not None:
            rows = list(Message.select().where((Message.id == msg_id) & (Message.direction == "out")
                                               & Message.state.in_([UNKNOWN, SENDING])))
        else:
            rows = _match_evidence(peer, sender, text, self.box)
        if not rows:
            return None
        m = rows[0]
        fields = {"state": new, "updated_at": now, "note": f"resolved by late evidence: {evidence}",
                  "error": error if new == FAILED else ""}
        if transport_id:
            fields["transport_id"] = ",".join(x for x in (m.transport_id, transport_id) if x)
            fields["account"] = m.account or self.accounts.get("smpp", "smpp")   # later receipts match it
        with self.write():
            Message.update(**fields).where((Message.id == m.id)
                                           & Message.state.in_([UNKNOWN, SENDING])).execute()
        return m.id

    def mark_no_receipt(self, before: float, now: float, transport: str = "smpp") -> list[int]:
        """Texts accepted before `before` whose receipt never came: state no-receipt. A receipt
        that still comes later sets the final state as usual."""
        with self.write():
            ids = [m.id for m in Message.select(Message.id).where(
                (Message.direction == "out") & (Message.state == SENT) & (Message.box == self.box)
                & (Message.transport == transport) & (Message.updated_at < before))]
            if ids:
                Message.update(state=NO_RECEIPT, updated_at=now,
                               note="no delivery receipt from the gateway").where(
                    Message.id.in_(ids) & (Message.state == SENT)).execute()
        return ids

    def count_state(self, state: str, since: float = 0.0) -> int:
        return Message.select().where((Message.direction == "out") & (Message.state == state)
                                      & (Message.updated_at >= since)).count()

    def setting(self, key: str, default: str = "") -> str:
        row = Setting.select(Setting.value).where(Setting.key == key).first()
        return row.value if row else default

    def set_setting(self, key: str, value: str, now: float) -> None:
        # An upsert: two services starting at once on one empty PostgreSQL both write
        # service_started_at, and delete-then-insert lets both inserts race.
        with self.write():
            Setting.insert(key=key, value=value, set_at=now).on_conflict(
                conflict_target=[Setting.key],
                update={Setting.value: value, Setting.set_at: now}).execute()

    # ---- hours override ------------------------------------------------------------------------
    def hours_override(self, line: str, now: float | None = None) -> str:
        return self.hours_override_until(line, now)[0]

    def hours_override_until(self, line: str, now: float | None = None) -> tuple[str, float | None]:
        """(open|closed|auto, when it ends). An override whose end has passed is auto."""
        row = HoursOverride.select().where(HoursOverride.line == line).first()
        now = time.time() if now is None else now
        if row is None or (row.until is not None and now >= row.until):
            return "auto", None
        return row.mode, row.until

    def set_hours_override(self, line: str, mode: str, now: float, until: float | None = None) -> None:
        with self.write():
            if mode == "auto":
                HoursOverride.delete().where(HoursOverride.line == line).execute()
                return
            HoursOverride.insert(line=line, mode=mode, set_at=now, until=until).on_conflict(
                conflict_target=[HoursOverride.line],
                update={HoursOverride.mode: mode, HoursOverride.set_at: now,
                        HoursOverride.until: until}).execute()

    # ---- explain ------------------------------------------------------------------------------
    def boxes(self) -> list[str]:
        """The PBX boxes whose calls this store holds (one, unless several share it)."""
        return [c.box for c in Call.select(Call.box).where(Call.box != "").distinct().order_by(Call.box)]

    def calls_for(self, key: str) -> list[dict]:
        # caller_raw only where it differs from caller: the index holds those (lean_writes.py);
        # a call whose raw number is its E.164 is found by caller
        q = Call.select().where((Call.call_id == key) | (Call.caller == key)
                                | ((Call.caller_raw == key) & (Call.caller_raw != Call.caller))
                                | (Call.called == key))      # an outbound call to the number
        out = []
        for call in q.order_by(Call.created_at, Call.id):
            dec = call.decisions.order_by(DecisionRow.id.desc()).first()
            msgs = [_message_dict(m) for m in Message.select().where(
                        (Message.call == call) | (Message.ref.in_(
                            Message.select(Message.id).where(Message.call == call))))
                    .order_by(Message.id)]
            rec = json.loads(call.record)
            out.append({
                "call_id": call.call_id, "pbx": call.pbx, "box": call.box, "caller": call.caller,
                "called": call.called, "line": call.line, "direction": call.direction,
                "missed": call.missed, "reason": call.reason, "why": call.why,
                "voicemail_left": call.voicemail_left, "recovered": call.recovered,
                "started_at": call.started_at, "ended_at": call.ended_at,
                "decision": dec.action if dec else None, "template": dec.template if dec else "",
                "checks": json.loads(dec.checks) if dec else [],
                "messages": msgs, "notes": rec.get("notes", []),
                "answered_by": rec.get("answered_by", ""), "answered": call.answered,
            })
        return out


def _own_call(box: str):
    """A call of this box, or one recorded before stores named boxes (never texted twice)."""
    return Call.box.in_([box, ""])


def _digits(number: str) -> str:
    return "".join(ch for ch in number or "" if ch.isdigit())


# 'pending' written into the SQL, not bound: the planner matches a partial index's WHERE only
# to the query's own text (message_peer_pending, store/lean_pages.py)
_PENDING_SQL = pw.SQL("'pending'")


def _match_evidence(peer: str, sender: str, text: str, box: str) -> list[Message]:
    """unknown rows first, then sending ones, oldest first, that fit a receipt."""
    import re
    digits = _digits(peer)
    if not digits or not (text or "").strip():
        return []        # no recipient or no text: too little to name one text
    pattern = re.compile("".join("." if ch == "?" else re.escape(ch) for ch in text.strip()), re.S)
    rows = Message.select().where((Message.direction == "out") & Message.state.in_([UNKNOWN, SENDING])
                                  & Message.peer.in_([digits, "+" + digits]) & Message.box.in_([box, ""]))
    fits = [m for m in rows if (not sender or not m.line or _digits(m.line) == _digits(sender))
            and pattern.search(m.body)]
    return sorted(fits, key=lambda m: (m.state != UNKNOWN, m.id))


def _message_dict(m: Message) -> dict:
    """A message as explain and export show it."""
    return {"id": m.id, "direction": m.direction, "kind": m.kind, "line": m.line, "peer": m.peer,
            "body": m.body, "state": m.state, "due_at": m.due_at, "attempts": m.attempts,
            "transport": m.transport, "transport_id": m.transport_id, "error": m.error, "note": m.note,
            "calls_missed": m.calls_missed, "created_at": m.created_at, "updated_at": m.updated_at,
            "ref": m.ref, "call": m.call_id, "written_at": m.written_at, "box": m.box,
            "account": m.account}


def open_store(path: str = "", dsn: str = "", box: str = "") -> Store:
    if dsn:
        db = _postgres(dsn)
    else:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _owned_by_directory_owner(path)
        db = pw.SqliteDatabase(path, pragmas={
            # busy_timeout first: switching a new file to WAL takes a lock, and processes
            # opening it at once must wait for it, not fail with "database is locked"
            "busy_timeout": 5000, "journal_mode": "wal", "synchronous": "normal",
            # statement journals (an insert whose triggers write other tables opens one) in
            # memory, not a temp file made and removed per transaction: half a call's insert
            "temp_store": "memory",
            "foreign_keys": 1}, check_same_thread=False)
    proxy.initialize(db)
    try:
        _connect_and_migrate(db, sqlite=not dsn)
    except pw.OperationalError as e:
        if dsn or path == ":memory:":
            raise
        raise StoreError(f"cannot open the store {path}: {e}{_ownership_fix(path)}") from None
    return Store(db, box)


def _connect_and_migrate(db: pw.Database, sqlite: bool) -> None:
    """Connect and bring the schema up to date. SQLite can still answer "database is locked"
    while several processes open a new file at once (the switch to WAL, under a loaded
    machine, can outlast the busy timeout): try again a few times before giving up."""
    for attempt in range(6):
        try:
            db.connect(reuse_if_open=True)
            from .spill import sorts_on_disk
            with sorts_on_disk(db):     # a migration's sort over a big table: not all in memory
                migrate(db)
            return
        except pw.OperationalError as e:
            if not sqlite or "locked" not in str(e) or attempt == 5:
                raise
            db.close()
            time.sleep(0.2 * (attempt + 1))


def _postgres(dsn: str) -> pw.Database:
    from urllib.parse import urlparse
    u = urlparse(dsn)
    return pw.PostgresqlDatabase(u.path.lstrip("/"), user=u.username, password=u.password,
                                 host=u.hostname, port=u.port or 5432)


MIGRATION_LOCK = 0x70627874          # PostgreSQL advisory lock key of migrate(): 'pbxt'


def migrate(db: pw.Database) -> int:
    """A new store gets today's schema at once; an older one gets each later step in order."""
    # SQLite: take the write lock first (IMMEDIATE), so a second process opening the store at
    # once (the service starting, `status` asking) waits its turn instead of failing on the
    # upgrade from reader to writer, which SQLite refuses at once with "database is locked"
    with db.atomic("IMMEDIATE") if isinstance(db, pw.SqliteDatabase) else db.atomic():
        if isinstance(db, pw.PostgresqlDatabase):
            # several services (one per PBX box) may start at once on an empty or older store:
            # one migrates, the others wait here and then find it done
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        if not db.table_exists("schemaversion"):
            from .callbacks import Callback
            db.create_tables([SchemaVersion] + MODELS + [Callback])
            for create in NEW_STORE_TABLES:
                create(db)
            latest = max(v for v, _ in MIGRATIONS)
            SchemaVersion.create(version=latest, applied_at=time.time())
            return latest
        current = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 0
        for version, step in sorted(MIGRATIONS, key=lambda m: m[0]):
            if version > current:
                step(db)
                SchemaVersion.create(version=version, applied_at=time.time())
                current = version
        from .text_tally import fold_ended
        fold_ended(db)          # PostgreSQL: ended backends' text counts into one slot
    return current


# ---- who owns the store ------------------------------------------------------------------
class StoreError(Exception):
    """The store cannot be used; the message says why and what to run."""


def _owned_by_directory_owner(path: str) -> None:
    """A command run as root (doctor, pause, explain… from a root shell) must never leave the
    SQLite store unwritable for the service: the file belongs to its directory's owner (the
    unit's StateDirectory, owned by the service's user). SQLite itself gives its -wal and -shm
    files the database file's owner when it runs as root."""
    import logging
    import os
    if os.geteuid() != 0:
        return
    p = Path(path)
    d = p.parent.stat()
    if d.st_uid == 0:
        return                      # a root-owned directory: nothing to hand back
    if not p.exists():
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.fchown(fd, d.st_uid, d.st_gid)
        finally:
            os.close(fd)
        return
    for f in (p, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if f.exists() and (uid := f.stat().st_uid) != d.st_uid:
            os.chown(f, d.st_uid, d.st_gid)
            logging.getLogger("pbx_textback.store").warning(
                "%s belonged to uid %d: given back to uid %d, the owner of %s (the service's user)",
                f, uid, d.st_uid, p.parent)


def check_writable(store: Store, path: str, now: float) -> None:
    """One real write, before the service says it is ready: a store it cannot write is a
    StoreError that names the owner and the command that fixes it."""
    try:
        store.set_setting("service_started_at", f"{now:.3f}", now)
    except pw.OperationalError as e:
        if store.is_sqlite and path not in ("", ":memory:"):
            raise StoreError(f"cannot write the store {path}: {e}{_ownership_fix(path)}") from None
        raise StoreError(f"cannot write the store: {e}") from None


def _ownership_fix(path: str) -> str:
    import os
    import pwd
    me = pwd.getpwuid(os.geteuid()).pw_name
    bad = [f for f in (path, f"{path}-wal", f"{path}-shm", str(Path(path).parent))
           if os.path.exists(f) and not os.access(f, os.W_OK)]
    if not bad:
        return ""
    try:
        owner = pwd.getpwuid(os.stat(bad[0]).st_uid).pw_name
    except KeyError:
        owner = f"uid {os.stat(bad[0]).st_uid}"
    return (f" ({bad[0]} belongs to {owner}; this service runs as {me}). Fix: "
            f"`chown {me}: {' '.join(bad)}`, then restart")


# ---- what `status` reads ---------------------------------------------------------------
def waiting_texts(store: Store) -> tuple[int, float | None, int]:
    """Texts not yet handed over (pending or being sent): how many and since when the oldest
    was written; and how many have an unknown fate."""
    q = Message.select(pw.fn.COUNT(Message.id), pw.fn.MIN(Message.created_at)).where(
        (Message.direction == "out") & Message.state.in_([PENDING, SENDING]))
    n, oldest = q.scalar(as_tuple=True)
    unknown = Message.select().where((Message.direction == "out") & (Message.state == UNKNOWN)).count()
    return int(n or 0), oldest, unknown


def setting_since(store: Store, key: str) -> tuple[str, float] | None:
    row = Setting.get_or_none(Setting.key == key)
    return (row.value, row.set_at) if row else None


from . import reports as _reports  # noqa: E402,F401  (its migration 19 and indexes register on import)
