"""The result stores (ftdag.store): every store, every durability mode, on real files and a
real SQLite database: round trips, the record format, damaged records, unpicklable values,
pickling the stores, and concurrent writers in threads and in worker processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sqlite3
import threading
import warnings
from pathlib import Path

import pytest
from helpers import TIMEOUT, Background, results

import ftdag
from ftdag import store as st
from ftdag.store import MISSING, CorruptRecordWarning, DirectoryStore, MemoryStore, SQLiteStore, Store

KINDS = ["memory", "dir-fast", "dir-atomic", "dir-durable", "sqlite"]
SHARED = ["dir-fast", "dir-atomic", "dir-durable", "sqlite"]  # the stores other processes can use


def fp(n: int) -> str:
    """A valid fingerprint (64 hex digits, as a sha256 gives), distinct for each ``n``."""
    return f"{n:064x}"


def new_store(kind: str, where) -> Store:
    """A store of ``kind`` kept under the directory ``where`` (the same records for the same ``where``)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(where / "records.sqlite")
    return DirectoryStore(where / "records", durability=kind.removeprefix("dir-"))


@pytest.fixture
def make(tmp_path):
    """``make(kind)``: a store of that kind in ``tmp_path``; SQLite connections of this thread are closed after."""
    made: list = []

    def _make(kind: str) -> Store:
        s = new_store(kind, tmp_path)
        made.append(s)
        return s

    yield _make
    for s in made:
        if isinstance(s, SQLiteStore):
            s.close()


@pytest.fixture(params=KINDS)
def store(request, make) -> Store:
    return make(request.param)


# -- raw records, read and written behind the store's back ---------------------------------------


def raw(s: Store, f: str) -> bytes:
    if isinstance(s, MemoryStore):
        return s._records[f]
    if isinstance(s, DirectoryStore):
        with open(s._file(f), "rb") as fh:
            return fh.read()
    assert isinstance(s, SQLiteStore)
    db = sqlite3.connect(s.path)
    try:
        return db.execute("SELECT data FROM records WHERE fingerprint = ?", (f,)).fetchone()[0]
    finally:
        db.close()


def overwrite(s: Store, f: str, data: bytes) -> None:
    if isinstance(s, MemoryStore):
        s._records[f] = data
    elif isinstance(s, DirectoryStore):
        with open(s._file(f), "wb") as fh:
            fh.write(data)
    else:
        assert isinstance(s, SQLiteStore)
        db = sqlite3.connect(s.path)
        try:
            with db:
                db.execute("UPDATE records SET data = ? WHERE fingerprint = ?", (data, f))
        finally:
            db.close()


def flip_payload_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


DAMAGE = {
    "flipped payload byte": (flip_payload_byte, "checksum mismatch"),
    "truncated": (lambda d: d[: len(d) // 2], "payload bytes"),
    "truncated header": (lambda d: d[:10], "truncated"),
    "extra byte": (lambda d: d + b"\x00", "payload bytes"),
    "garbage magic": (lambda d: b"GARBAG" + d[6:], "bad magic"),
    "zero length": (lambda d: b"", "truncated: 0 bytes"),
    "not a pickle": (lambda d: st.encode_record(b"not a pickle"), "cannot be unpickled"),
}


# -- the record format ---------------------------------------------------------------------------


def test_record_layout():
    payload = pickle.dumps({"a": 1})
    rec = st.encode_record(payload)
    assert rec[:6] == b"FTDAG\x01"
    assert int.from_bytes(rec[6:14], "big") == len(payload)
    assert int.from_bytes(rec[14:18], "big") == __import__("zlib").crc32(payload)
    assert rec[18:] == payload
    assert st.decode_record(rec) == payload
    assert st.decode_record(st.encode_record(b"")) == b""


@pytest.mark.parametrize("damage", sorted(set(DAMAGE) - {"not a pickle"}))
def test_decode_rejects_damaged_records(damage):
    mutate, reason = DAMAGE[damage]
    with pytest.raises(st._Corrupt, match=reason):
        st.decode_record(mutate(st.encode_record(pickle.dumps(list(range(100))))))


# -- the Store protocol, on every store ----------------------------------------------------------


def test_is_a_store(store):
    assert isinstance(store, Store)
    assert store.process_local is isinstance(store, MemoryStore)
    assert not isinstance(object(), Store)


@pytest.mark.parametrize("value", [{"a": [1, 2.5, "x"], ("t", 1): None}, b"\x00" * 100_000, None, 0, ""])
def test_round_trip(store, value):
    store.save(fp(1), value, key="k")
    got = store.load(fp(1), key="k")
    assert got == value
    assert type(got) is type(value)


def test_missing(store):
    assert store.load(fp(1)) is MISSING
    assert fp(1) not in store
    assert len(store) == 0
    assert repr(MISSING) == str(MISSING) == "ftdag.store.MISSING"
    assert ftdag.MISSING is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING


def test_len_contains_delete_clear(store):
    for i in range(5):
        store.save(fp(i), i)
    assert len(store) == 5
    assert all(fp(i) in store for i in range(5))
    store.delete(fp(2))
    store.delete(fp(2))  # absent: no error
    store.delete(fp(99))
    assert fp(2) not in store and store.load(fp(2)) is MISSING
    assert len(store) == 4
    store.clear()
    assert len(store) == 0
    assert all(store.load(fp(i)) is MISSING for i in range(5))
    store.clear()  # empty: no error
    store.save(fp(7), "again")  # usable after clear
    assert store.load(fp(7)) == "again"


def test_overwrite(store):
    store.save(fp(1), "old")
    store.save(fp(1), ["new", 2])
    assert store.load(fp(1)) == ["new", 2]
    assert len(store) == 1


def test_a_saved_value_is_a_snapshot(store):
    value = {"items": [1, 2]}
    store.save(fp(1), value)
    value["items"].append(3)
    first = store.load(fp(1))
    assert first == {"items": [1, 2]}
    first["items"].clear()
    assert store.load(fp(1)) == {"items": [1, 2]}


@pytest.mark.parametrize("bad", ["AB12", "", "xyz", "ab/../cd", "ab.rec", "a" * 129, 12, None, b"ab"])
def test_fingerprint_must_be_lowercase_hex(store, bad):
    for call in (lambda: store.load(bad), lambda: store.save(bad, 1), lambda: store.delete(bad),
                 lambda: bad in store):
        with pytest.raises(ValueError, match="lowercase hex digits") as info:
            call()
        assert repr(bad) in str(info.value)
    store.save("a" * 128, 1)  # the longest allowed
    store.save("0", 2)  # the shortest
    assert store.load("a" * 128) == 1 and store.load("0") == 2


class Unpicklable:
    def __reduce__(self):
        raise TypeError("this object refuses to be pickled")


def test_unpicklable_value_raises_serialization_error(store, tmp_path):
    store.save(fp(1), "kept")
    key = ("sum", "eu")
    for value in ({"x": threading.Lock()}, Unpicklable(), lambda: 1):
        with pytest.raises(ftdag.SerializationError) as info:
            store.save(fp(2), value, key=key)
        err = info.value
        assert err.key == key and err.what == "result"
        assert isinstance(err, ftdag.TaskError)
        assert f"the result of task {key!r} cannot be saved to the store" in str(err)
        assert "Return a picklable value" in str(err)
        assert err.__cause__ is not None and type(err.__cause__).__name__ in str(err)
        err2 = pickle.loads(pickle.dumps(err))
        assert (err2.key, err2.what, str(err2)) == (err.key, err.what, str(err))
    # Nothing stored, nothing left behind; an existing record of the same fingerprint survives.
    with pytest.raises(ftdag.SerializationError):
        store.save(fp(1), Unpicklable(), key=key)
    assert store.load(fp(2)) is MISSING and fp(2) not in store
    assert store.load(fp(1)) == "kept" and len(store) == 1
    if isinstance(store, DirectoryStore):
        files = sorted(p.name for p in (tmp_path / "records").rglob("*") if p.is_file())
        assert files == [fp(1) + ".rec"]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_record_warns_and_is_deleted(store, damage):
    mutate, reason = DAMAGE[damage]
    store.save(fp(1), {"value": list(range(50))}, key=("task", 1))
    store.save(fp(2), "untouched")
    overwrite(store, fp(1), mutate(raw(store, fp(1))))
    with pytest.warns(CorruptRecordWarning) as caught:
        assert store.load(fp(1), key=("task", 1)) is MISSING
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "('task', 1)" in message and reason in message and "deleted it" in message
    assert fp(1) in message  # the fingerprint, or the file named after it
    assert caught[0].filename == __file__  # attributed to the caller of load()
    assert fp(1) not in store and len(store) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(fp(1)) is MISSING  # gone: no second warning
        assert store.load(fp(2)) == "untouched"
    store.save(fp(1), "recomputed")
    assert store.load(fp(1)) == "recomputed"


@pytest.mark.parametrize("kind", ["memory", "dir-atomic", "dir-durable", "sqlite"])
def test_deleting_a_corrupt_record_spares_one_saved_since(make, kind):
    """load() deletes the version it read, not a whole record another writer saved meanwhile
    (not in "fast" mode, which rewrites the same file)."""
    s = make(kind)
    s.save(fp(1), "first")
    found = s._read(fp(1))
    assert found is not None
    s.save(fp(1), "second")
    s._discard(fp(1), found[1])
    assert s.load(fp(1)) == "second"
    s._discard(fp(1), s._read(fp(1))[1])
    assert s.load(fp(1)) is MISSING


def test_unreadable_record_file(make):
    s = make("dir-atomic")
    os.makedirs(s._file(fp(1)))  # a directory where the record's file should be
    with pytest.warns(CorruptRecordWarning, match=r"'k'.*unreadable: IsADirectoryError.*could not delete it"):
        assert s.load(fp(1), key="k") is MISSING


def test_sqlite_data_that_is_not_a_blob(make):
    s = make("sqlite")
    s.save(fp(1), 1)
    db = sqlite3.connect(s.path)
    with db:
        db.execute("UPDATE records SET data = 'text' WHERE fingerprint = ?", (fp(1),))
    db.close()
    with pytest.warns(CorruptRecordWarning, match="holds str, not a BLOB"):
        assert s.load(fp(1), key="k") is MISSING
    assert len(s) == 0


# -- DirectoryStore specifics ---------------------------------------------------------------------


def test_directory_layout(tmp_path):
    s = DirectoryStore(tmp_path / "d")
    s.save("abcdef", 1)
    assert (tmp_path / "d" / "ab" / "abcdef.rec").is_file()
    assert s.path == str(tmp_path / "d") and s.durability == "atomic"
    assert repr(s) == f"DirectoryStore({str(tmp_path / 'd')!r}, durability='atomic')"


def test_directory_store_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = DirectoryStore("rel")
    assert s.path == str(tmp_path / "rel")
    t = SQLiteStore("rel.sqlite")
    assert t.path == str(tmp_path / "rel.sqlite")


@pytest.mark.parametrize("kind", ["dir-atomic", "dir-durable"])
def test_stale_temp_file_is_ignored_and_cleared(make, kind, tmp_path):
    s = make(kind)
    s.save(fp(2), "other")
    sub = tmp_path / "records" / fp(1)[:2]
    stale = sub / f"{fp(1)}.4242.1234.deadbeef.tmp"  # a writer that crashed before its rename
    stale.write_bytes(st.encode_record(pickle.dumps("partial"))[:25])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s.load(fp(1)) is MISSING
    assert len(s) == 1 and fp(1) not in s
    s.save(fp(1), "whole")
    assert s.load(fp(1)) == "whole" and len(s) == 2
    assert stale.exists()  # not the store's to remove while another writer may own it...
    s.clear()
    assert not stale.exists() and len(s) == 0  # ...but clear() removes everything
    assert list(sub.iterdir()) == []


def test_torn_write_under_the_final_name(make):
    """What a "fast" writer killed mid-write leaves: a prefix of the record, under its name."""
    s = make("dir-fast")
    s.save(fp(1), b"x" * 10_000)
    whole = raw(s, fp(1))
    for cut in (0, 5, 18, 4096, len(whole) - 1):
        overwrite(s, fp(1), whole[:cut])
        with pytest.warns(CorruptRecordWarning, match="truncated|payload bytes"):
            assert s.load(fp(1), key="k") is MISSING


@pytest.mark.parametrize("durability", ["fast", "atomic", "durable"])
def test_durability_writes(tmp_path, monkeypatch, durability):
    """atomic and durable write a temporary file and os.replace it onto the record's name; durable
    also fsyncs the file and its directory; fast writes in place."""
    calls: list = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", a, b)), real_replace(a, b))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    s = DirectoryStore(tmp_path / "d", durability)
    s.save(fp(1), 1)  # creates the subdirectory
    calls.clear()
    s.save(fp(2), 2)
    final = s._file(fp(2))
    if durability == "fast":
        assert calls == []
    else:
        replaces = [c for c in calls if c[0] == "replace"]
        assert len(replaces) == 1 and replaces[0][2] == final
        tmp = os.path.basename(replaces[0][1])
        assert tmp.startswith(f"{fp(2)}.{os.getpid()}.{threading.get_ident()}.") and tmp.endswith(".tmp")
        fsyncs = [c[1] for c in calls if c[0] == "fsync"]
        assert fsyncs == ([False, True] if durability == "durable" else [])  # the file, then its directory
        if durability == "durable":
            assert calls.index(("fsync", False)) < calls.index(replaces[0]) < calls.index(("fsync", True))
    assert s.load(fp(2)) == 2


def test_save_racing_clear_does_not_fail(tmp_path, monkeypatch):
    """clear() may remove a writer's temporary file before its rename: the save then loses, quietly."""
    s = DirectoryStore(tmp_path / "d")
    real_replace = os.replace

    def clear_first(src, dst):
        s.clear()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", clear_first)
    s.save(fp(1), 1)
    monkeypatch.setattr(os, "replace", real_replace)
    assert len(s) == 0 and list((tmp_path / "d" / fp(1)[:2]).iterdir()) == []


def test_store_directory_removed_under_it(tmp_path):
    import shutil

    s = DirectoryStore(tmp_path / "d")
    s.save(fp(1), 1)
    shutil.rmtree(tmp_path / "d")
    assert len(s) == 0 and s.load(fp(1)) is MISSING
    s.save(fp(1), 2)  # recreates it
    assert s.load(fp(1)) == 2


def test_atomic_save_never_exposes_a_partial_record(make):
    """A reader polling while a 10 MB record is replaced sees the old or the new value, whole."""
    s = make("dir-atomic")
    old, new = b"o" * 10_000_000, b"n" * 10_000_000
    s.save(fp(1), old)
    done = threading.Event()

    def write():
        try:
            s.save(fp(1), new)
        finally:
            done.set()

    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptRecordWarning)
        writer = Background(write)
        while not done.is_set():  # bounded by the writer finishing
            got = s.load(fp(1))
            assert got is not MISSING and got in (old, new)
            seen.add(got[:1])
        writer.result()
    assert s.load(fp(1)) == new
    assert seen <= {b"o", b"n"}


# -- constructors, pickling ------------------------------------------------------------------------


def test_invalid_constructor_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"one of 'fast', 'atomic', 'durable', got 'safe'"):
        DirectoryStore(tmp_path, "safe")
    for cls in (DirectoryStore, SQLiteStore):
        for bad in (123, None, b"/tmp/x"):
            with pytest.raises(TypeError, match=rf"{cls.__name__} path must be a str or os.PathLike"):
                cls(bad)
        with pytest.raises(ValueError, match="must not be empty"):
            cls("")
    with pytest.raises(ValueError, match="use MemoryStore"):
        SQLiteStore(":memory:")
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        DirectoryStore(tmp_path / "file")


@pytest.mark.parametrize("kind", SHARED)
def test_pickled_store_sees_the_same_records(make, kind):
    s = make(kind)
    s.save(fp(1), "one")
    copy = pickle.loads(pickle.dumps(s))
    try:
        assert type(copy) is type(s) and repr(copy) == repr(s)
        assert copy.load(fp(1)) == "one"
        copy.save(fp(2), "two")
        assert s.load(fp(2)) == "two" and len(s) == len(copy) == 2
        if isinstance(s, DirectoryStore):
            assert copy.durability == s.durability
    finally:
        if isinstance(copy, SQLiteStore):
            copy.close()


def test_memory_store_refuses_pickling():
    s = MemoryStore()
    with pytest.raises(TypeError, match="MemoryStore cannot be pickled.*DirectoryStore or SQLiteStore"):
        pickle.dumps(s)
    import copy

    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.copy(s)


# -- SQLiteStore connections ------------------------------------------------------------------------


def test_sqlite_one_connection_per_thread(make):
    s = make("sqlite")
    mine = s._db()
    assert s._db() is mine
    other = Background(lambda: (id(s._db()), s.save(fp(1), "from a thread"))[0]).result()
    assert other != id(mine)
    assert s.load(fp(1)) == "from a thread"
    s.close()
    s.close()  # twice: no error
    with pytest.raises(sqlite3.ProgrammingError):
        mine.execute("SELECT 1")  # closed
    assert s.load(fp(1)) == "from a thread"  # reopens
    mode = s._db().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_sqlite_reconnects_in_a_forked_child(make, monkeypatch):
    """A store inherited through fork() opens its own connection, leaving the parent's alone."""
    s = make("sqlite")
    s.save(fp(1), 1)
    parents = s._db()
    monkeypatch.setattr(st._Connection, "_getpid", staticmethod(lambda: -1))  # as a forked child sees it
    try:
        assert s._db() is not parents
        assert st._INHERITED[-1] is parents  # kept open, never used again
        assert s.load(fp(1)) == 1
        s.close()  # the "child's" own connection, closed in the "child"
        assert st._INHERITED[-1] is parents
    finally:
        monkeypatch.undo()
        st._INHERITED.remove(parents)
        parents.close()
    assert s.load(fp(1)) == 1


# -- concurrency --------------------------------------------------------------------------------------


def value_of(n: int) -> dict:
    """The value every writer saves under fp(n) (a result depends on its fingerprint only)."""
    return {"n": n, "blob": bytes([n % 256]) * (1000 + 37 * n)}


@pytest.mark.filterwarnings("error::ftdag.store.CorruptRecordWarning")
def test_concurrent_threads(store):
    """8 threads save and load overlapping fingerprints; every load is MISSING or the whole value
    (in "fast" mode, loads wait for the writes: a reader may see a record half written)."""
    threads, per, overlap = 8, 30, 10
    fast = isinstance(store, DirectoryStore) and store.durability == "fast"
    barrier = threading.Barrier(threads, timeout=TIMEOUT)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(per):
            n = (t * overlap + i) % (threads * overlap)  # each fingerprint written by ~3 threads
            store.save(fp(n), value_of(n), key=n)
            if not fast:
                got = store.load(fp((n + 7) % (threads * overlap)))
                assert got is MISSING or got == value_of((n + 7) % (threads * overlap))
                assert store.load(fp(n)) == value_of(n)
        if isinstance(store, SQLiteStore):
            store.close()

    results(Background(worker, t) for t in range(threads))
    written = {(t * overlap + i) % (threads * overlap) for t in range(threads) for i in range(per)}
    assert len(store) == len(written)
    for n in written:
        assert store.load(fp(n), key=n) == value_of(n)


SHARED_BASE = 10**6  # the fingerprints every worker process writes


def test_sqlite_many_threads_make_the_database_at_once(tmp_path):
    """Switching a new database to WAL fails at once (no busy wait) for all but one of several
    connections trying together: the store retries."""
    path = tmp_path / "new.sqlite"
    barrier = threading.Barrier(8, timeout=TIMEOUT)

    def open_and_save(t: int) -> None:
        barrier.wait()
        s = SQLiteStore(path)
        s.save(fp(t), t)
        s.close()

    results(Background(open_and_save, t) for t in range(8))
    s = SQLiteStore(path)
    assert sorted(s.load(fp(t)) for t in range(8)) == list(range(8))
    s.close()


def _write_many(s: Store, worker: int, per: int) -> None:
    """A worker process's part: its own records, and some every worker writes, then a check."""
    for i in range(per):
        s.save(fp(1000 * worker + i), value_of(i), key=(worker, i))
        s.save(fp(SHARED_BASE + i % 10), value_of(i % 10), key=("shared", i % 10))
    for i in range(per):
        assert s.load(fp(1000 * worker + i)) == value_of(i)


@pytest.mark.parametrize("kind", ["dir-fast", "dir-atomic", "sqlite"])
def test_concurrent_processes(make, kind):
    """4 worker processes (forkserver) write into one store at once; the parent then loads every record."""
    s = make(kind)
    ctx = multiprocessing.get_context("forkserver")
    workers, per = 4, 40
    procs = [ctx.Process(target=_write_many, args=(s, w, per), name=f"store-writer-{w}") for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(3 * TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * workers
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptRecordWarning)
        assert len(s) == workers * per + 10
        for w in range(workers):
            for i in range(per):
                assert s.load(fp(1000 * w + i)) == value_of(i)
        for i in range(10):
            assert s.load(fp(SHARED_BASE + i)) == value_of(i)
    if isinstance(s, DirectoryStore):
        assert not list(Path(s.path).rglob("*.tmp"))
