"""The embedded store on real files: durability of what a commit acknowledged, grouping, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broker.persistence.store import SCHEMA_VERSION, Statement, Store, StoreError, StoreLocked

pytestmark = pytest.mark.anyio

NULL_PAYLOAD = "INSERT INTO retained (topic, payload, qos) VALUES (?, ?, ?)"  # payload is NOT NULL
RETAIN = "INSERT OR REPLACE INTO retained (topic, payload, qos) VALUES (?, ?, ?)"


def retain(topic: str, payload: bytes = b"p", qos: int = 1) -> list[Statement]:
    return [Statement(RETAIN, (topic, payload, qos))]


async def test_committed_rows_are_there_after_reopening(tmp_path: Path) -> None:
    """What a write's future confirmed is read back by the next process to open the file."""
    path = tmp_path / "data" / "edgemq.db"
    store = Store.open(path)
    await store.write(retain("a/b", b"one"))
    await store.write(retain("a/b", b"two") + retain("c", b"three", 0))
    store.close()
    again = Store.open(path)
    try:
        assert sorted(again.read("SELECT topic, payload, qos FROM retained")) == [
            ("a/b", b"two", 1),
            ("c", b"three", 0),
        ]
    finally:
        again.close()
    assert (path.parent.stat().st_mode & 0o777) == 0o700


async def test_writes_waiting_together_share_one_transaction(tmp_path: Path) -> None:
    """Writes queued while a commit cannot proceed are committed together, in one transaction."""
    path = tmp_path / "edgemq.db"
    store = Store.open(path)
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer's next transaction waits for this one
        first = store.write(retain("t/0"))
        rest = []
        for n in range(1, 50):  # each in a loop turn of its own: 49 batches for the writer thread
            await asyncio.sleep(0)
            rest.append(store.write(retain(f"t/{n}")))
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        assert store.commits <= 2  # the first alone (it may have started waiting), then the 49 together
        assert len(set(rest)) == 49
        assert len(store.read("SELECT topic FROM retained")) == 50
    finally:
        store.close()


async def test_writes_of_one_loop_turn_are_one_batch(tmp_path: Path) -> None:
    """Writes made in one event-loop turn share one future and one transaction."""
    store = Store.open(tmp_path / "edgemq.db")
    try:
        futures = {store.write(retain(f"t/{n}")) for n in range(20)}
        assert len(futures) == 1
        assert store.stats().pending_writes == 1
        await futures.pop()
        assert store.commits == 1
        stats = store.stats()
        assert (stats.pending_writes, stats.commits, stats.write_errors) == (0, 1, 0)
        assert stats.file_bytes > 0
        assert stats.commit_seconds_total > 0
    finally:
        store.close()


async def test_a_failed_write_is_counted_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Failed commits are counted and the first of a run logged as one ERROR naming the file."""
    store = Store.open(tmp_path / "edgemq.db")
    bad = [Statement(NULL_PAYLOAD, ("t", None, 0))]
    try:
        for _ in range(3):
            with pytest.raises(StoreError):
                await store.write(bad)
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1
        assert "edgemq.db" in errors[0].getMessage()
        assert store.stats().write_errors == 3
        assert store.stats().last_error is not None
        await store.write(retain("after"))
        assert store.stats().last_error is None
    finally:
        store.close()


async def test_a_failed_write_fails_its_future_and_the_store_goes_on(tmp_path: Path) -> None:
    """A statement the database refuses fails that write with StoreError; later writes succeed."""
    store = Store.open(tmp_path / "edgemq.db")
    try:
        with pytest.raises(StoreError, match=r"edgemq\.db"):
            await store.write([Statement(NULL_PAYLOAD, ("t", None, 0))])
        await store.write(retain("after"))
        assert store.read("SELECT topic FROM retained") == [("after",)]
    finally:
        store.close()


def test_a_second_process_on_the_same_file_is_refused(tmp_path: Path) -> None:
    """Only one process uses a store: another one gets StoreLocked naming the file."""
    path = tmp_path / "edgemq.db"
    store = Store.open(path)
    try:
        probe = textwrap.dedent(f"""
            from broker.persistence.store import Store, StoreLocked
            try:
                Store.open({str(path)!r})
            except StoreLocked as exc:
                print(exc)
        """)
        answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert f"the store {path} is in use by another process" in answer.stdout, answer.stderr
    finally:
        store.close()


def test_the_lock_is_released_on_close(tmp_path: Path) -> None:
    """A closed store can be opened again at once (by this process or another)."""
    path = tmp_path / "edgemq.db"
    Store.open(path).close()
    held = Store.open(path)
    try:
        with pytest.raises(StoreLocked):
            Store.open(path)
    finally:
        held.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a database at all, just text" * 100, "not a readable edgemq store"),
        (None, "not an edgemq store"),  # someone else's SQLite database
    ],
)
def test_a_file_that_is_not_an_edgemq_store_is_refused_and_left_alone(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    """A corrupt or foreign file is refused with its name and never written."""
    path = tmp_path / "edgemq.db"
    if content is None:
        foreign = sqlite3.connect(path)
        foreign.execute("CREATE TABLE theirs (x)")
        foreign.commit()
        foreign.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=reason) as refused:
        Store.open(path)
    assert str(path) in str(refused.value)
    assert path.read_bytes() == before
    Store.open(tmp_path / "other.db").close()  # the refusal left no lock behind on other files


WRITER = """
import asyncio, sys
from broker.persistence.store import Statement, Store

async def main() -> None:
    store = Store.open(sys.argv[1], sync="always")
    for n in range(100_000):
        await store.write([Statement("INSERT INTO retained (topic, payload, qos) VALUES (?, ?, 1)", (f"t/{n}", b"x"))])
        print(n, flush=True)

asyncio.run(main())
"""


def test_every_confirmed_write_survives_kill_9(tmp_path: Path) -> None:
    """A process killed with SIGKILL mid-stream loses none of the writes whose commit it had seen."""
    path = tmp_path / "edgemq.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    confirmed = -1
    try:
        for line in writer.stdout:
            confirmed = int(line)
            if confirmed >= 200:
                break
    finally:
        writer.kill()
        writer.wait(30)
        writer.stdout.close()
    assert confirmed >= 200
    store = Store.open(path)
    try:
        topics = {topic for (topic,) in store.read("SELECT topic FROM retained")}
    finally:
        store.close()
    assert {f"t/{n}" for n in range(confirmed + 1)} <= topics


async def test_a_failed_write_nobody_awaits_is_not_reported_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed write whose future nobody awaits leaves no "exception was never retrieved" report."""
    store = Store.open(tmp_path / "edgemq.db")
    try:
        store.write([Statement(NULL_PAYLOAD, ("t", None, 0))])
        await asyncio.sleep(0)  # the failing batch is handed over: the next write is a batch of its own
        await store.write(retain("after"))  # committed after the failed one
        gc.collect()  # an unretrieved exception is reported when its future is collected
    finally:
        store.close()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_one_failing_batch_does_not_fail_those_committed_with_it(tmp_path: Path) -> None:
    """Batches grouped into one transaction are retried one by one when it fails: only the bad one fails."""
    path = tmp_path / "edgemq.db"
    store = Store.open(path)
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer waits with the first batch: the next two group
        first = store.write(retain("first"))
        await asyncio.sleep(0)
        bad = store.write([Statement(NULL_PAYLOAD, ("t", None, 0))])
        await asyncio.sleep(0)
        good = store.write(retain("good"))
        blocker.execute("ROLLBACK")
        blocker.close()
        await first
        with pytest.raises(StoreError):
            await bad
        await good
        assert sorted(store.read("SELECT topic FROM retained")) == [("first",), ("good",)]
        assert store.stats().write_errors == 1
    finally:
        store.close()


def test_a_store_of_schema_version_1_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A version 1 store (issue 14's) opens as the current version: the bridge queue table added, its rows kept."""
    path = tmp_path / "edgemq.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        old.execute("PRAGMA application_id = 1701078893")  # edgemq's
        old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        old.execute("CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL)")
        old.execute("CREATE TABLE sessions (client_id TEXT PRIMARY KEY, username TEXT, protocol INTEGER NOT NULL)")
        old.execute(
            "CREATE TABLE subscriptions (client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL,"
            " PRIMARY KEY (client_id, filter))"
        )
        old.execute(
            "CREATE TABLE messages (client_id TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, qos INTEGER NOT NULL, packet_id INTEGER,"
            " released INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (client_id, seq))"
        )
        old.execute("INSERT INTO retained VALUES ('kept', x'01', 1)")
    store = Store.open(path)
    try:
        assert store.read("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert store.read("SELECT topic FROM retained") == [("kept",)]
        assert store.read("SELECT count(*) FROM bridge_messages") == [(0,)]
    finally:
        store.close()


SCHEMA_2 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL);
CREATE TABLE sessions (client_id TEXT PRIMARY KEY, username TEXT, protocol INTEGER NOT NULL);
CREATE TABLE subscriptions (
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter)
);
CREATE TABLE messages (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, packet_id INTEGER, released INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (client_id, seq)
);
CREATE TABLE incoming_qos2 (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
CREATE TABLE bridge_messages (
    bridge TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, PRIMARY KEY (bridge, seq)
);
PRAGMA application_id = 1701078893;
INSERT INTO meta VALUES ('schema_version', '2');
INSERT INTO retained VALUES ('r', x'01', 1);
INSERT INTO sessions VALUES ('c', NULL, 4);
INSERT INTO messages VALUES ('c', 1, 'q', x'02', 1, 7, 0);
INSERT INTO bridge_messages VALUES ('up', 2, 'f', x'03', 2, 1);
"""
"""A store as issue 15's edgemq (schema version 2) wrote it, with a row in each message table."""


def test_a_store_of_schema_version_2_is_migrated_in_one_logged_step_keeping_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A version 2 store opens as the current version: its message rows kept, with NULL properties and expiry."""
    path = tmp_path / "edgemq.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        old.executescript(SCHEMA_2)
    caplog.set_level("INFO", "edgemq.store")
    store = Store.open(path)
    try:
        version = store.read("SELECT value FROM meta WHERE key = 'schema_version'")
        rows = [
            store.read("SELECT topic, payload, qos, properties, expires_at FROM retained"),
            store.read("SELECT seq, packet_id, properties, expires_at FROM messages"),
            store.read("SELECT seq, retain, properties, expires_at FROM bridge_messages"),
        ]
    finally:
        store.close()
    assert version == [(str(SCHEMA_VERSION),)]
    assert rows == [[("r", b"\x01", 1, None, None)], [(1, 7, None, None)], [(2, 1, None, None)]]
    migrated = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert migrated == [f"the store {path} was migrated from schema version 2 to {SCHEMA_VERSION}"]


def test_a_failing_migration_leaves_the_version_2_store_as_it_was(tmp_path: Path) -> None:
    """A migration that cannot complete (a table missing) changes nothing: one transaction."""
    path = tmp_path / "edgemq.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        old.executescript(SCHEMA_2)
        old.execute("DROP TABLE bridge_messages")  # the last table the migration alters
    with pytest.raises(StoreError):
        Store.open(path)
    with contextlib.closing(sqlite3.connect(path)) as after:
        assert after.execute("SELECT value FROM meta").fetchall() == [("2",)]
        columns = [row[1] for row in after.execute("PRAGMA table_info(retained)")]
    assert columns == ["topic", "payload", "qos"]


SCHEMA_3 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE retained (
    topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, properties BLOB, expires_at REAL
);
CREATE TABLE sessions (client_id TEXT PRIMARY KEY, username TEXT, protocol INTEGER NOT NULL);
CREATE TABLE subscriptions (
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter)
);
CREATE TABLE messages (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, packet_id INTEGER, released INTEGER NOT NULL DEFAULT 0, properties BLOB, expires_at REAL,
    PRIMARY KEY (client_id, seq)
);
CREATE TABLE incoming_qos2 (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
CREATE TABLE bridge_messages (
    bridge TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, properties BLOB, expires_at REAL, PRIMARY KEY (bridge, seq)
);
PRAGMA application_id = 1701078893;
INSERT INTO meta VALUES ('schema_version', '3');
INSERT INTO sessions VALUES ('v3', 'u', 4);
INSERT INTO sessions VALUES ('v5', NULL, 5);
INSERT INTO subscriptions VALUES ('v3', 'a/#', 1);
INSERT INTO subscriptions VALUES ('v5', 'b/+', 2);
INSERT INTO messages VALUES ('v5', 1, 'b/x', x'02', 1, NULL, 0, NULL, NULL);
"""
"""A store as the first MQTT 5 edgemq (schema version 3) wrote it: a 3.1.1 and an MQTT 5 session."""


def test_a_store_of_schema_version_3_is_migrated_in_one_logged_step_keeping_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A version 3 store opens as version 4: sessions with no expiry or end, subscriptions with default options."""
    path = tmp_path / "edgemq.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        old.executescript(SCHEMA_3)
    caplog.set_level("INFO", "edgemq.store")
    store = Store.open(path)
    try:
        version = store.read("SELECT value FROM meta WHERE key = 'schema_version'")
        sessions = store.read("SELECT * FROM sessions ORDER BY client_id")
        subscriptions = store.read("SELECT * FROM subscriptions ORDER BY client_id")
        messages = store.read("SELECT client_id, seq, topic FROM messages")
    finally:
        store.close()
    assert version == [("4",)] == [(str(SCHEMA_VERSION),)]
    assert sessions == [("v3", "u", 4, None, None), ("v5", None, 5, None, None)]
    assert subscriptions == [("v3", "a/#", 1, 0, 0, None), ("v5", "b/+", 2, 0, 0, None)]
    assert messages == [("v5", 1, "b/x")]
    migrated = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert migrated == [f"the store {path} was migrated from schema version 3 to 4"]


def test_a_failing_migration_leaves_the_version_3_store_as_it_was(tmp_path: Path) -> None:
    """A version 3 migration that cannot complete (the subscriptions table missing) changes nothing."""
    path = tmp_path / "edgemq.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        old.executescript(SCHEMA_3)
        old.execute("DROP TABLE subscriptions")  # altered after sessions
    with pytest.raises(StoreError):
        Store.open(path)
    with contextlib.closing(sqlite3.connect(path)) as after:
        assert after.execute("SELECT value FROM meta").fetchall() == [("3",)]
        columns = [row[1] for row in after.execute("PRAGMA table_info(sessions)")]
    assert columns == ["client_id", "username", "protocol"]


def test_a_store_of_schema_version_1_reaches_version_4_with_its_sessions(tmp_path: Path) -> None:
    """A version 1 store migrates through 2 and 3 to 4 in one step: its session rows gain the MQTT 5 columns."""
    path = tmp_path / "edgemq.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as old:
        old.executescript(SCHEMA_2.split("CREATE TABLE bridge_messages")[0])  # version 1: no bridge queue
        old.executescript(
            "PRAGMA application_id = 1701078893; INSERT INTO meta VALUES ('schema_version', '1');"
            " INSERT INTO sessions VALUES ('c', NULL, 4); INSERT INTO subscriptions VALUES ('c', 'f', 1);"
        )
    store = Store.open(path)
    try:
        assert store.read("SELECT value FROM meta") == [("4",)]
        assert store.read("SELECT * FROM sessions") == [("c", None, 4, None, None)]
        assert store.read("SELECT * FROM subscriptions") == [("c", "f", 1, 0, 0, None)]
        assert store.read("SELECT count(*) FROM bridge_messages") == [(0,)]
    finally:
        store.close()
