"""Result stores for resumable runs: a task's result saved under its fingerprint, loaded later.

A store maps *fingerprints* (lowercase hex strings, at most 128 digits: they become file
names) to pickled values.  :class:`Store` is the protocol; three stores implement it:

:class:`MemoryStore`     a dict in this process (``process_local``: it cannot be shared with
                         worker processes, so the parent must save to it).
:class:`DirectoryStore`  one file per record, ``<path>/<fp[:2]>/<fp>.rec``.
:class:`SQLiteStore`     one row per record in an SQLite database in WAL mode.

``load`` returns :data:`MISSING` when there is no record.

Record format
-------------
Every store keeps the same bytes for a record (:func:`encode_record`), so that every store
detects damage the same way::

    offset  size  field
    0       6     magic b"FTDAG\\x01" (the last byte is the format version)
    6       8     payload length, unsigned big-endian
    14      4     zlib.crc32 of the payload, unsigned big-endian
    18      n     payload: pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

A record that is too short, has another magic, a length that is not the payload's, a
checksum that does not match, a payload that does not unpickle, or that cannot be read at
all, is never returned: ``load`` warns with :class:`CorruptRecordWarning` (naming the task
key and where the record was), deletes the record and returns :data:`MISSING`, so the task
is computed again.  A payload that does not unpickle in *this* process (its class was
renamed, or is defined in a ``__main__`` this process does not have) counts as corrupt too.

CRC-32 rather than a cryptographic hash: the checksum guards against accidents (a torn or
truncated write, a flipped bit, a file overwritten by something else), not against an
attacker, who could as well write a valid record: a pickle runs code when loaded, so a
store's location must only be writable by whoever may run code as you.  CRC-32 detects
every error burst of up to 32 bits and misses a random corruption with probability
2**-32; a torn write is caught by the length field regardless.  It is also the cheapest
checksum the standard library has: measured on this project's (busy) 2-core machine, best
of 7, for a 1 MB payload ``zlib.crc32`` takes 0.31-0.47 ms and
``hashlib.blake2b(digest_size=16)`` 1.4-1.9 ms (on both builds; ``sha1`` 0.7 ms,
``adler32`` no faster than CRC-32); for 1 KB, 0.7-0.9 µs against 2.5-2.8 µs.  Next to a
1 MB record's write and read (about 2 ms, ``benchmarks/store_overhead.py``), blake2b would
add the most.

Durability (:class:`DirectoryStore`)
------------------------------------
``"fast"``     writes the record in place.  A crash (or a kill) mid-write leaves a partial
               record under the final name; ``load`` detects it, warns and deletes it.
``"atomic"``   (the default) writes a unique temporary file in the record's directory,
               ``<fp>.<pid>.<thread id>.<random>.tmp``, then ``os.replace`` s it onto the final
               name: the final name only ever holds a whole record.  A crash leaves at
               worst a stray ``.tmp`` file, which ``len`` ignores and ``clear`` removes.
               Survives a process crash.  After a power loss the last records may be
               missing (the operating system had not written them yet), or on some file
               systems empty or partial: ``load`` detects those.
``"durable"``  atomic, and ``os.fsync`` of the file before the rename and of its directory
               after: a record ``save`` returned for survives a power loss.

:class:`SQLiteStore` commits one transaction per record, in WAL mode with
``synchronous=NORMAL``: like ``"atomic"`` (SQLite's journal makes a commit all or nothing,
and a power loss may roll back the last commits).

Concurrency
-----------
Every method of every store may be called from many threads at once, and for
:class:`DirectoryStore` and :class:`SQLiteStore` from many processes at once (pickle the
store: it pickles by path).  ``load`` never returns anything but a whole value that some
``save`` stored under that fingerprint.  Two concurrent ``save`` calls of one fingerprint
both succeed and one whole record wins (in ``"fast"`` mode the two writes may interleave:
unless they wrote the same bytes, the checksum then makes the record read as corrupt, so a
later ``load`` misses; only a CRC-32 collision, 2**-32, would let a mix through).  A ``load``
concurrent with a ``"fast"`` save of the same fingerprint may see the record half written:
it warns, deletes it and misses, which costs a recomputation, never a wrong value.  When a
corrupt record is deleted, a whole record saved meanwhile by another writer is kept (the
stores delete only the record they read: the same file, the same blob, the same object),
except in ``"fast"`` mode, where a save rewrites the same file.  ``clear`` concurrent with
``save`` may or may not remove the record being saved; neither call fails.
``x in store`` means a record exists, not that it will load.
"""

from __future__ import annotations

import atexit
import enum
import os
import pickle
import re
import struct
import threading
import time
import warnings
import weakref
import zlib
from collections.abc import Hashable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._failures import _serialization_error, describe

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "MISSING",
    "CorruptRecordWarning",
    "DirectoryStore",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "decode_record",
    "encode_record",
]


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "ftdag.store.MISSING"

    __str__ = __repr__


MISSING = _Missing.MISSING
"""What :meth:`Store.load` returns for a fingerprint with no (usable) record."""


class CorruptRecordWarning(UserWarning):
    """A stored record was damaged or could not be read: it was deleted and treated as missing."""


@runtime_checkable
class Store(Protocol):
    """Where a run keeps task results, by fingerprint.  See the module docstring.

    ``key`` arguments only name the task in messages.  ``process_local`` is true for a
    store whose records live in one process (the process backend must then save in the
    parent).
    """

    process_local: bool

    def load(self, fingerprint: str, key: Hashable = None) -> object:
        """The value saved under ``fingerprint``, or :data:`MISSING`."""
        ...

    def save(self, fingerprint: str, value: object, key: Hashable = None) -> None:
        """Pickle ``value`` and store it under ``fingerprint``, replacing any record there."""
        ...

    def delete(self, fingerprint: str) -> None:
        """Remove the record of ``fingerprint``, if any."""
        ...

    def clear(self) -> None:
        """Remove every record."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, fingerprint: object) -> bool: ...


# -- records -------------------------------------------------------------------------------------

MAGIC = b"FTDAG\x01"
_HEADER = struct.Struct(">6sQI")  # magic, payload length, crc32 of the payload
HEADER_SIZE = _HEADER.size  # 18


class _Corrupt(Exception):
    """A record that must not be returned; ``.reason`` says why.  ``.token``: see :class:`_RecordStore`."""

    def __init__(self, reason: str, token: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token


def _header(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload))


def encode_record(payload: bytes) -> bytes:
    """The record holding ``payload``: magic, length, CRC-32, payload (see the module docstring)."""
    return _header(payload) + payload


def decode_record(data: bytes) -> memoryview:
    """The payload of the record ``data``, as a view of it (not a copy: a 1 MB copy costs as
    much as the checksum); raises :class:`_Corrupt` if it is not a whole, intact record."""
    if len(data) < HEADER_SIZE:
        raise _Corrupt(f"truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _Corrupt(f"bad magic {magic!r}, expected {MAGIC!r}")
    if len(data) - HEADER_SIZE != length:
        raise _Corrupt(f"the header says {length} payload bytes, the record has {len(data) - HEADER_SIZE}")
    payload = memoryview(data)[HEADER_SIZE:]
    actual = zlib.crc32(payload)
    if actual != crc:
        raise _Corrupt(f"checksum mismatch: CRC-32 {actual:#010x}, the header says {crc:#010x}")
    return payload


_FINGERPRINT = re.compile(r"[0-9a-f]{1,128}")


def _checked(fingerprint: object) -> str:
    if not isinstance(fingerprint, str) or _FINGERPRINT.fullmatch(fingerprint) is None:
        raise ValueError(f"a fingerprint must be a str of 1 to 128 lowercase hex digits, got {fingerprint!r}")
    return fingerprint


def _dumps(value: object, key: Hashable) -> bytes:
    """``value`` pickled, or :class:`~ftdag.SerializationError` (``what="result"``) chained from the pickling error."""
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise _serialization_error(
            key, "result", f"the result of task {key!r} cannot be saved to the store", describe(exc),
            "Return a picklable value, or run without a store.",
        ) from exc


def _path_arg(cls: type, path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{cls.__name__} path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{cls.__name__} path must be a str or os.PathLike of str, got {path!r}")
    if not text:
        raise ValueError(f"{cls.__name__} path must not be empty")
    return os.path.abspath(text)  # absolute: a pickled copy in a worker with another cwd is the same store


class _RecordStore:
    """``load``/``save`` on top of four primitives a store provides:

    ``_read(fp)``            ``None`` if there is no record, else ``(record bytes, token)``,
                             the token identifying the version read; raises :class:`_Corrupt`
                             if the record exists but cannot be read (its ``token`` is then
                             passed to ``_discard``).
    ``_write(fp, payload)``  store the record of ``payload``.
    ``_discard(fp, token)``  delete the record if it is still the version read; returns
                             ``None`` or why it could not be deleted.
    ``_where(fp)``           where the record is, for messages.
    """

    process_local: bool

    def load(self, fingerprint: str, key: Hashable = None) -> object:
        """The value saved under ``fingerprint``, or :data:`MISSING` (also, after a
        :class:`CorruptRecordWarning`, for a record that is damaged, which is deleted)."""
        fp = _checked(fingerprint)
        try:
            found = self._read(fp)
        except _Corrupt as exc:
            self._reject(fp, key, exc.reason, exc.token)
            return MISSING
        if found is None:
            return MISSING
        data, token = found
        try:
            payload = decode_record(data)
        except _Corrupt as exc:
            reason = exc.reason
        else:
            try:
                return pickle.loads(payload)
            except Exception as exc:
                reason = f"the value cannot be unpickled: {describe(exc)}"
        self._reject(fp, key, reason, token)
        return MISSING

    def save(self, fingerprint: str, value: object, key: Hashable = None) -> None:
        """Pickle ``value`` and store it under ``fingerprint``, replacing any record there; a
        value that does not pickle raises :class:`~ftdag.SerializationError` naming ``key``."""
        fp = _checked(fingerprint)
        self._write(fp, _dumps(value, key))

    def _reject(self, fp: str, key: Hashable, reason: str, token: object) -> None:
        failed = self._discard(fp, token)
        fate = "deleted it" if failed is None else f"could not delete it ({failed})"
        warnings.warn(
            f"corrupt store record for task {key!r} ({reason}) at {self._where(fp)}: treated it as missing and {fate}",
            CorruptRecordWarning, stacklevel=3,
        )

    def _read(self, fp: str) -> tuple[bytes, object] | None:
        raise NotImplementedError

    def _write(self, fp: str, payload: bytes) -> None:
        raise NotImplementedError

    def _discard(self, fp: str, token: object) -> str | None:
        raise NotImplementedError

    def _where(self, fp: str) -> str:
        raise NotImplementedError


# -- MemoryStore ---------------------------------------------------------------------------------


class MemoryStore(_RecordStore):
    """Records in a dict of this process, encoded as on disk.

    A saved value is pickled, so it is a snapshot: mutating the original afterwards does not
    change what ``load`` returns, and each ``load`` returns a new copy.  Cannot be pickled:
    a copy in a worker process would be another, empty store.
    """

    process_local = True

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}
        self._lock = threading.Lock()  # guards _records; never held while (un)pickling

    def _read(self, fp: str) -> tuple[bytes, object] | None:
        with self._lock:
            data = self._records.get(fp)
        return None if data is None else (data, data)

    def _write(self, fp: str, payload: bytes) -> None:
        record = encode_record(payload)
        with self._lock:
            self._records[fp] = record

    def _discard(self, fp: str, token: object) -> str | None:
        with self._lock:
            if self._records.get(fp) is token:  # not a record saved since it was read
                del self._records[fp]
        return None

    def _where(self, fp: str) -> str:
        return f"fingerprint {fp} in {self!r}"

    def delete(self, fingerprint: str) -> None:
        fp = _checked(fingerprint)
        with self._lock:
            self._records.pop(fp, None)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __contains__(self, fingerprint: object) -> bool:
        fp = _checked(fingerprint)
        with self._lock:
            return fp in self._records

    def __repr__(self) -> str:
        n = len(self)
        return f"<MemoryStore: {n} record{'' if n == 1 else 's'}>"

    def __reduce__(self):
        raise TypeError(
            "a MemoryStore cannot be pickled: its records live in this process only, so a copy in another "
            "process would be a different, empty store. Use DirectoryStore or SQLiteStore to share records "
            "between processes."
        )


# -- DirectoryStore ------------------------------------------------------------------------------

DURABILITIES = ("fast", "atomic", "durable")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: str, mode: str, header: bytes, payload: bytes, sync: bool) -> None:
    with open(path, mode) as f:
        f.write(header)
        f.write(payload)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class DirectoryStore(_RecordStore):
    """One file per record: ``<path>/<fp[:2]>/<fp>.rec``, written as ``durability`` says.

    ``durability`` is ``"fast"``, ``"atomic"`` (the default) or ``"durable"`` (see the module
    docstring).  ``path`` is made absolute and created if needed.  Pickles by path and
    durability, so worker processes can save to the same directory.
    """

    process_local = False

    def __init__(self, path: str | os.PathLike[str], durability: str = "atomic") -> None:
        root = _path_arg(type(self), path)
        if durability not in DURABILITIES:
            raise ValueError(
                f"DirectoryStore durability must be one of {', '.join(map(repr, DURABILITIES))}, got {durability!r}"
            )
        self._root = root
        self._durability = durability
        os.makedirs(root, exist_ok=True)

    @property
    def path(self) -> str:
        """The store's directory (absolute)."""
        return self._root

    @property
    def durability(self) -> str:
        return self._durability

    def __repr__(self) -> str:
        return f"DirectoryStore({self._root!r}, durability={self._durability!r})"

    def __reduce__(self):
        return (type(self), (self._root, self._durability))

    def _file(self, fp: str) -> str:
        return os.path.join(self._root, fp[:2], fp + ".rec")

    def _where(self, fp: str) -> str:
        return self._file(fp)

    def _read(self, fp: str) -> tuple[bytes, object] | None:
        path = self._file(fp)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _Corrupt(f"unreadable: {describe(exc)}") from None
        return data, (st.st_dev, st.st_ino)

    def _discard(self, fp: str, token: object) -> str | None:
        path = self._file(fp)
        try:
            if token is not None:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) != token:
                    return None  # replaced by a new record since it was read: keep that one
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return describe(exc)
        return None

    def _write(self, fp: str, payload: bytes) -> None:
        final = self._file(fp)
        header = _header(payload)
        if self._durability == "fast":
            self._write_file(final, "wb", header, payload, sync=False)
            return
        durable = self._durability == "durable"
        tmp = f"{final[:-4]}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.tmp"
        try:
            self._write_file(tmp, "xb", header, payload, sync=durable)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:
                if os.path.isdir(os.path.dirname(final)):
                    return  # a concurrent clear() removed the temporary file: the save came first
                raise
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if durable:
            _fsync_dir(os.path.dirname(final))

    def _write_file(self, path: str, mode: str, header: bytes, payload: bytes, sync: bool) -> None:
        try:
            _write(path, mode, header, payload, sync)
        except FileNotFoundError:  # the record's subdirectory did not exist (or another thread just made it)
            self._make_dir(os.path.dirname(path))
            _write(path, mode, header, payload, sync)

    def _make_dir(self, sub: str) -> None:
        try:
            os.mkdir(sub)
        except FileExistsError:
            return
        except FileNotFoundError:  # the store's own directory was removed: recreate it all
            os.makedirs(sub, exist_ok=True)
        if self._durability == "durable":
            _fsync_dir(self._root)  # the new directory's entry, so that records in it survive

    def delete(self, fingerprint: str) -> None:
        _unlink_quietly(self._file(_checked(fingerprint)))

    def _subdirs(self) -> list[str]:
        try:
            with os.scandir(self._root) as it:
                return [e.path for e in it if len(e.name) <= 2 and e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def _names(self, sub: str) -> list[str]:
        try:
            return os.listdir(sub)
        except FileNotFoundError:
            return []

    def clear(self) -> None:
        """Remove every record and every stray temporary file (directories stay)."""
        for sub in self._subdirs():
            for name in self._names(sub):
                if name.endswith((".rec", ".tmp")):
                    _unlink_quietly(os.path.join(sub, name))

    def __len__(self) -> int:
        return sum(name.endswith(".rec") for sub in self._subdirs() for name in self._names(sub))

    def __contains__(self, fingerprint: object) -> bool:
        return os.path.isfile(self._file(_checked(fingerprint)))


# -- SQLiteStore ---------------------------------------------------------------------------------

_SCHEMA = "CREATE TABLE IF NOT EXISTS records (fingerprint TEXT PRIMARY KEY, data BLOB NOT NULL)"
BUSY_TIMEOUT_S = 30.0

# Connections a forked child inherited from its parent.  SQLite forbids using them across a
# fork, and closing one in the child could disturb the parent's locks, so they are kept here,
# unused and open, for the child's lifetime.
_INHERITED: list[object] = []


class _Connection:
    """One thread's connection, closed when the thread's local storage (or the store) is freed,
    or at exit, whichever comes first."""

    __slots__ = ("__weakref__", "conn", "pid")

    # A class attribute, not the module's ``os``: close() may run at shutdown, after the
    # module's globals were cleared.
    _getpid = staticmethod(os.getpid)
    _inherited = _INHERITED

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = self._getpid()
        with _OPEN_LOCK:
            _OPEN.add(self)

    def inherited(self) -> bool:
        """Whether this connection was opened by another process (this one is a fork of it)."""
        return self.pid != self._getpid()

    def close(self) -> None:
        if self.inherited():
            self._inherited.append(self.conn)
            return
        try:
            self.conn.close()  # a no-op if already closed
        except Exception:
            pass

    __del__ = close


_OPEN: weakref.WeakSet[_Connection] = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Close this process's connections at exit: left to the interpreter's shutdown, a connection
    may be freed before the :class:`_Connection` holding it, and warn (ResourceWarning)."""
    with _OPEN_LOCK:
        held = list(_OPEN)
    for h in held:
        h.close()


class SQLiteStore(_RecordStore):
    """Records in an SQLite database: table ``records(fingerprint TEXT PRIMARY KEY, data BLOB)``.

    WAL journal mode, ``synchronous=NORMAL``, a busy timeout of :data:`BUSY_TIMEOUT_S`, one
    transaction (``INSERT OR REPLACE``) per record.  Each thread of each process has its
    own connection, opened on first use; a store that was pickled into, or forked into,
    another process opens new ones there.  :meth:`close` closes the calling thread's
    connection; another thread's is closed when that thread exits (its thread-local storage
    is freed) or when the store is freed.  Connections are opened with
    ``check_same_thread=False`` only so that this last close may happen on whichever thread
    frees them: a connection is never used by two threads.  Pickles by path.
    """

    process_local = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if path == ":memory:":
            raise ValueError(
                f"SQLiteStore needs a database file, got {path!r} (each connection to an in-memory "
                "database is a different database; use MemoryStore)"
            )
        self._path = _path_arg(type(self), path)
        self._local = threading.local()
        self._db()  # make the database now: a bad path fails here, and it is in WAL mode before any worker uses it

    @property
    def path(self) -> str:
        """The database file (absolute)."""
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    def __reduce__(self):
        return (type(self), (self._path,))

    def _db(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is None or held.inherited():  # an inherited one goes to _INHERITED as it is freed
            held = self._local.held = _Connection(self._connect())
        return held.conn

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        # Autocommit (isolation_level=None): each statement is its own transaction.  The
        # timeout is SQLite's busy timeout: how long a statement waits for another writer.
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            # Switching a new database to WAL needs an exclusive lock, and SQLite fails a
            # connection at once (without waiting) when waiting could deadlock, as when
            # several connections make the database at the same moment: retry until the
            # busy timeout.  Once the file is in WAL mode (it stays so) nothing is switched.
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            delay = 0.001
            while True:
                try:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(_SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(delay)
                delay = min(2 * delay, 0.05)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the calling thread's connection (the next call opens a new one)."""
        held = getattr(self._local, "held", None)
        if held is not None:
            del self._local.held  # _Connection.__del__ closes it (or keeps it, if inherited)

    def _where(self, fp: str) -> str:
        return f"fingerprint {fp} in {self._path}"

    def _read(self, fp: str) -> tuple[bytes, object] | None:
        row = self._db().execute("SELECT data FROM records WHERE fingerprint = ?", (fp,)).fetchone()
        if row is None:
            return None
        data = row[0]
        if not isinstance(data, bytes):  # written by something else, as text or a number
            raise _Corrupt(f"the data column holds {type(data).__name__}, not a BLOB", data)
        return data, data

    def _discard(self, fp: str, token: object) -> str | None:
        # Only the version read: a record saved meanwhile by another writer stays.
        self._db().execute("DELETE FROM records WHERE fingerprint = ? AND data = ?", (fp, token))
        return None

    def _write(self, fp: str, payload: bytes) -> None:
        self._db().execute("INSERT OR REPLACE INTO records (fingerprint, data) VALUES (?, ?)",
                           (fp, encode_record(payload)))

    def delete(self, fingerprint: str) -> None:
        self._db().execute("DELETE FROM records WHERE fingerprint = ?", (_checked(fingerprint),))

    def clear(self) -> None:
        self._db().execute("DELETE FROM records")

    def __len__(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM records").fetchone()[0])

    def __contains__(self, fingerprint: object) -> bool:
        fp = _checked(fingerprint)
        return self._db().execute("SELECT 1 FROM records WHERE fingerprint = ?", (fp,)).fetchone() is not None

