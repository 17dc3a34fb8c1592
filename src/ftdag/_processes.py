"""The process backend: a persistent pool of worker processes, scheduled from the caller's thread.

This is ftdag's fallback for GIL builds, where threads cannot run Python code in parallel.
It has the thread backend's semantics (pruning, each node once, bounded in-flight tasks and
per-worker queues, fail fast, results released after their last consumer, the same stats),
but values cross to the workers by pickling, so only the parent holds the run's values.

State
-----
The pool owns ``max_workers`` processes, started (``forkserver`` where available, else
``spawn``; never ``fork``, since the parent has threads) on the first run, reused by later
runs, and shut down by ``close()``.  Each worker has its own duplex pipe (a socket pair).
All scheduling happens in the thread that called ``run()``: it waits in one
:mod:`selectors` selector on every worker's pipe (replies; writability while a message is
only partly written) and on every worker's process sentinel (its death).  There are no
extra threads, and the only lock, ``_run_lock``, serialises runs.

``_Worker.assigned``  the tasks sent to (or being sent to) the worker and not yet answered,
                      oldest first: the worker runs its tasks in this order, so
                      ``assigned[0]`` is the one it is running.
``_Worker.keep_tail`` ``assigned[-1]`` if the worker was told to keep that task's result for a
                      chain link (below), else -1.
``_Worker.outbuf``    bytes of messages not yet written to the worker's pipe (written with
                      ``MSG_DONTWAIT``, the rest when the selector says the pipe has room).
``_Worker.known``     ids of the functions the worker has cached.
``_Run.ready``        ready tasks that are not assigned: they wait in the parent for room,
                      holding no pickled inputs.
``_Run.in_flight``    the sum of ``len(w.assigned)``: tasks queued in or running on workers.
``_cancel``           a shared ``RawValue('q')``: the id of the last cancelled run.

A task moves ``ready -> assigned -> answered``.  ``_dispatch`` fills free slots with ready
tasks (least-loaded worker first, ties going to the worker whose reply freed the slot, so the
slot is refilled at once), then uses what room is left for *chain links*: a dependent ``u``
whose only unfinished dependency is ``t = assigned[-1]`` of a worker that keeps ``t``'s result
is assigned right behind ``t`` on that worker, which passes the result on without a round
trip through the parent (and without pickling it at all when ``u`` is its only consumer).
``u`` never enters ``ready``: its ``remaining`` count is set to 0 when it is linked, and
``t``'s reply takes it below 0.  A worker keeps at most one result, dropped when its next
task starts (or by an empty message at the end of the run), so a chain runs at the speed of
one worker, not of pipe round trips.

Messages
--------
Every message is one frame of :class:`multiprocessing.connection.Connection`'s format
(``!i`` length, then the bytes), a pickle.  Parent to worker::

    (run_id, defs, forget, tasks)   defs: [(fid, pickled function)] that the worker lacks,
                                    forget: [fid] whose functions the parent has dropped,
                                    tasks: [(task id, fid, pickled list of arguments,
                                             flags SEND|KEEP, linked task or -1,
                                             argument positions the linked result fills)];
                                    no tasks: drop the kept result (the run is over)
    b""                             shut down

A function is pickled once per pool (``cloudpickle`` if importable, else ``pickle``; the
pickle check happens before a run starts, for every planned function) and sent once per
worker.  A message carries every task dispatched to that worker at once (several when a
run starts, several slots free up together, or a chain is linked).  Worker to parent, one
per task, in order::

    (run_id, task id, status, payload)   OK: the result (None unless SEND); SKIPPED: None
                                         (cancelled before it started); an error status:
                                         (pickled exception or None, "Type: message",
                                         traceback text)

Invariants
----------
I1. ``in_flight <= bound = min(max_in_flight, workers * (cap + 1))``: ``_dispatch`` assigns
    at most ``bound - in_flight`` tasks (links included); every reply (and a worker's death)
    gives its tasks back.
I2. ``len(w.assigned) <= cap + 1`` (one running, ``cap`` queued in the worker):
    ``_dispatch`` assigns only below it, so at most ``cap`` tasks' inputs wait in a worker.
I3. Each planned task is sent at most once: it is assigned either from ``ready``, which it
    enters once (when its ``remaining`` count reaches 0) and leaves by a pop, or as a link,
    which needs ``remaining > 0`` and sets it to 0.
I4. A task starts only after all its dependencies finished: a ready task's ``remaining``
    reached 0 after each dependency's reply was stored in ``values``; a linked task's other
    dependencies had finished when it was linked, and its worker runs it after ``t``, whose
    failure (or cancellation) cancels the run before ``u`` would start.
I5. ``values[d]`` is dropped when ``consumers[d]`` reaches 0, i.e. when the last planned
    dependent of ``d`` has finished (requested outputs hold one extra count).
I6. Fail fast: after a failure the run is ``stopped``: ``ready`` is emptied, nothing more is
    dispatched, and the cancel flag is set (by the failing worker itself, and by the parent
    when it sees the failure), so no queued task starts: workers answer them ``SKIPPED``.
    The parent waits until every assigned task is answered, then raises.
I7. Nothing stale crosses runs: a run returns only when no worker holds one of its tasks
    (each was answered, or its worker was terminated and is replaced by the next run), and
    every message carries its run id, replies of another run being ignored.

Failures
--------
A task's exception comes back pickled, with its traceback text; it becomes the
``__cause__`` of :class:`~ftdag.TaskError` (its own ``__cause__`` being a
``_RemoteTraceback`` holding that text).  A ``BaseException`` (``SystemExit``,
``KeyboardInterrupt``) raised by a task is re-raised as it is, as the thread backend does;
the worker survives it.  A worker that dies (``os._exit``, a signal, the OOM killer) fails
the run with :class:`~ftdag.WorkerCrashedError` naming ``assigned[0]``; it is replaced by the
next run.  Ctrl-C in the parent (any exception escaping the loop) stops the run, waits up to
``_INTERRUPT_GRACE`` seconds for running tasks, terminates the workers still busy (they are
replaced on next use), and re-raises.

Stats: ``peak_in_flight`` is the most tasks assigned at once, ``peak_queue_len`` the most
tasks queued (assigned, not running) at one worker, and ``steals`` is always 0: a task's
inputs are sent with it, so the pool does not move queued tasks between workers.  So a
queued task can wait behind a long one while another worker idles: with tasks of very uneven
cost, ``worker_queue_cap=1`` or ``max_in_flight=max_workers`` keeps that wait short.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.util
import pickle
import selectors
import socket
import struct
import threading
import time
import weakref
from collections import deque

from . import _process_worker as _pw
from ._plan import Plan
from .config import ExecutorConfig
from .errors import TaskError, WorkerCrashedError, _task_failed

__all__ = ["ProcessPool"]

_INTERRUPT_GRACE = 1.0  # seconds running tasks get to finish after Ctrl-C before termination
_JOIN_TIMEOUT = 5.0  # seconds a worker gets to exit after being asked to (or after terminate)
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_SMALL = 1 << 16  # messages up to this size are copied behind their header in one write

# Statuses of replies (the worker's) and of parent-side failures.
_OK, _SKIPPED = _pw.OK, _pw.SKIPPED
_SEND, _KEEP = _pw.SEND, _pw.KEEP
_CRASHED = -1  # payload: exit code
_UNSENDABLE = -2  # payload: (dependency id or -1, exception)
_UNLOADABLE = -3  # payload: exception raised unpickling the reply

# What a selector key's data says an event is about.
_READ, _WRITE, _EXIT = 0, 1, 2

_HEADER = struct.Struct("!i").pack
_INT32 = struct.Struct("!i").unpack_from
_UINT64 = struct.Struct("!Q").unpack_from
_CHUNK = 1 << 16  # bytes read at a time, at least
_MAX_CHUNK = 1 << 22  # and at most
_cloudpickle = None  # the module, or False when it is not installed


def _header(n: int) -> bytes:
    return _HEADER(n) if n <= 0x7FFFFFFF else _HEADER(-1) + struct.pack("!Q", n)


def _dumps_function(fn: object) -> bytes:
    global _cloudpickle
    if _cloudpickle is None:
        try:
            import cloudpickle
        except ImportError:
            _cloudpickle = False
        else:
            _cloudpickle = cloudpickle
    if _cloudpickle:
        return _cloudpickle.dumps(fn, _PROTOCOL)
    return pickle.dumps(fn, _PROTOCOL)


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process (as its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb.rstrip()}\n"""'


class _RemoteError(Exception):
    """Stands for a worker's exception that could not be sent back (it did not pickle or unpickle)."""


def _remote_exception(payload: tuple) -> BaseException:
    blob, summary, text = payload
    exc = None
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = _RemoteError(f"{summary} (the exception itself could not be sent back from the worker process)")
    if text:
        exc.__cause__ = _RemoteTraceback(text)
    return exc


class _Fn:
    """A function of some plan, pickled once: its id for the workers and its bytes."""

    __slots__ = ("fid", "data", "target")

    def __init__(self, fid: int, data: bytes, target) -> None:
        self.fid = fid
        self.data = data
        self.target = target  # () -> the function, or None once it was garbage-collected


class _Worker:
    """One worker process and the parent's view of it; see the module docstring."""

    __slots__ = (
        "index", "proc", "pid", "conn", "sock", "dead", "known", "forget",
        "assigned", "keep_tail", "outbuf", "writing", "inbuf", "need", "reading",
    )

    def __init__(self, index: int, proc, conn) -> None:
        self.index = index
        self.proc = proc
        self.pid = proc.pid
        self.conn = conn
        self.sock = None  # a dup of the pipe's socket for non-blocking writes
        if _DONTWAIT:
            try:
                self.sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
            except OSError:
                self.sock = None
        self.dead = False
        self.known: set[int] = set()
        self.forget: list[int] = []
        self.assigned: deque[int] = deque()
        self.keep_tail = -1  # assigned[-1] if the worker keeps its result for a chain link
        self.outbuf: deque = deque()
        self.writing = False  # registered for writability
        self.inbuf = bytearray()  # bytes of replies not yet complete
        self.need = 0  # bytes missing to complete the reply in inbuf, when known
        self.reading = False  # inside _receive (an interruption there loses replies or framing)


class _Run:
    """One run's scheduling state; see the module docstring."""

    __slots__ = (
        "run_id", "plan", "keys", "deps", "dependents", "values", "remaining", "consumers",
        "fid_of", "fn_data", "ready", "links", "bound", "in_flight", "pending", "stopped", "error",
        "peak_in_flight", "peak_queue_len",
    )

    def __init__(self, plan: Plan, run_id: int, fid_of: list[int], fn_data: dict[int, bytes], bound: int) -> None:
        dag = plan.dag
        self.run_id, self.plan = run_id, plan
        self.keys, self.deps, self.dependents = dag._keys, dag._deps, dag._dependents
        self.values, self.remaining, self.consumers = plan.values, plan.remaining, plan.consumers
        self.fid_of = fid_of
        self.fn_data = fn_data
        self.ready = list(reversed(plan.initial))  # popped from the end: topological order first
        self.links: dict[int, int] = {}  # task -> the task it is linked behind, until sent
        self.bound = bound
        self.in_flight = 0
        self.pending = len(plan.tasks)
        self.stopped = False
        self.error: tuple[int, int, object] | None = None  # (task, status, payload), the first failure
        self.peak_in_flight = self.peak_queue_len = 0


class ProcessPool:
    """``max_workers`` persistent worker processes that execute plans; see the module docstring."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.workers = config.max_workers
        self._slots = config.worker_queue_cap + 1
        self._bound = config.in_flight_bound
        self._run_lock = threading.Lock()
        self._closed = False
        self._ctx = None
        self._cancel = None
        self._selector: selectors.BaseSelector | None = None
        self._workers: list[_Worker] = []
        self._run_ids = itertools.count(1)
        self._fids = itertools.count(1)
        self._fn_cache: dict[int, _Fn] = {}  # id(function) -> its entry
        self._dead_fns: list[tuple[int, int]] = []  # (id, fid) of collected functions, from weakref callbacks
        self._finalizer = None

    # -- the caller's side ----------------------------------------------------------------------

    def run(self, plan: Plan) -> dict[str, int]:
        """Execute ``plan``; raise :class:`~ftdag.TaskError` (or a task's ``BaseException``)."""
        with self._run_lock:
            if self._closed:
                raise RuntimeError("this executor is closed")
            fid_of, fn_data = self._functions(plan)  # may raise, before anything runs
            run = _Run(plan, next(self._run_ids), fid_of, fn_data, self._bound)
            if run.pending:
                try:
                    self._ensure_started()
                    self._dispatch(run, None)
                    self._loop(run)
                except BaseException:
                    self._abort(run)
                    raise
                finally:
                    self._release_kept(run)
        if run.error is not None:
            self._raise(run)
        return {
            "workers": self.workers,
            "peak_in_flight": run.peak_in_flight,
            "peak_queue_len": run.peak_queue_len,
            "steals": 0,
        }

    def close(self) -> None:
        """Shut the workers down (after the current run, if any).  Idempotent."""
        with self._run_lock:
            self._closed = True
            _shutdown(self._workers)
            if self._finalizer is not None:
                self._finalizer.cancel()
                self._finalizer = None
            if self._selector is not None:
                self._selector.close()
                self._selector = None

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.pid for w in self._workers if not w.dead]

    # -- workers --------------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._selector is None:
            self._ctx = _context()
            self._cancel = self._ctx.RawValue("q", 0)
            self._selector = selectors.DefaultSelector()
            # Runs at interpreter exit before multiprocessing joins its children (and on collection).
            self._finalizer = multiprocessing.util.Finalize(self, _shutdown, args=(self._workers,), exitpriority=10)
        else:
            self._reap()
        workers = self._workers
        for i, w in enumerate(workers):
            if w.dead:
                workers[i] = self._spawn(i)
        while len(workers) < self.workers:
            workers.append(self._spawn(len(workers)))

    def _spawn(self, index: int) -> _Worker:
        ctx = self._ctx
        conn, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_pw.main, args=(child, self._cancel), name=f"ftdag-worker-{index}", daemon=False)
        try:
            proc.start()
        finally:
            child.close()
        w = _Worker(index, proc, conn)
        self._selector.register(conn.fileno(), selectors.EVENT_READ, (w, _READ))
        self._selector.register(proc.sentinel, selectors.EVENT_READ, (w, _EXIT))
        return w

    def _reap(self) -> None:
        """Between runs: notice workers that died since the last run."""
        self._handle(None, self._selector.select(0))

    def _release_kept(self, run: _Run) -> None:
        """After a run: workers whose last task's result was kept for a link drop it."""
        for w in self._workers:
            if w.keep_tail >= 0:
                w.keep_tail = -1
                if not w.dead:
                    self._send(w, pickle.dumps((run.run_id, (), (), ()), _PROTOCOL))

    def _discard(self, w: _Worker) -> None:
        """Forget a worker whose process has exited: unregister and close its pipe."""
        w.dead = True
        sel = self._selector
        for fd in (w.conn.fileno(), w.proc.sentinel):
            try:
                sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        if w.writing:
            try:
                sel.unregister(w.sock.fileno())
            except (KeyError, ValueError):
                pass
            w.writing = False
        _close_pipe(w)
        w.outbuf.clear()

    def _kill(self, w: _Worker) -> None:
        """Terminate a worker that is busy with a task of an abandoned run."""
        w.dead = True
        _stop_process(w.proc, terminate=True)
        self._discard(w)

    # -- functions ------------------------------------------------------------------------------

    def _functions(self, plan: Plan) -> tuple[list[int], dict[int, bytes]]:
        """Each planned task's function id, and the pickled functions; pickle them if new."""
        dag = plan.dag
        fns, keys = dag._fns, dag._keys
        cache = self._fn_cache
        self._drop_dead_functions()
        fid_of = [0] * len(fns)
        fn_data: dict[int, bytes] = {}
        seen: dict[int, int] = {}
        for i in plan.tasks:
            fn = fns[i]
            fid = seen.get(id(fn))
            if fid is None:
                entry = cache.get(id(fn))
                if entry is None or entry.target() is not fn:
                    entry = self._new_function(fn, keys[i])
                    cache[id(fn)] = entry
                fid = seen[id(fn)] = entry.fid
                fn_data[fid] = entry.data
            fid_of[i] = fid
        return fid_of, fn_data

    def _new_function(self, fn: object, key: object) -> _Fn:
        try:
            data = _dumps_function(fn)
        except Exception as exc:
            name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
            if _cloudpickle:
                hint = ("cloudpickle could not pickle it either, so it probably refers to an object that "
                        "cannot be pickled (a lock, a file, a connection): pass such things differently, "
                        "or use backend='threads'")
            else:
                hint = ("define it at module level (lambdas, closures and nested functions cannot be "
                        "pickled by the standard library), install the ftdag[cloudpickle] extra, "
                        "or use backend='threads'")
            raise TaskError(
                key,
                f"the function of task {key!r} ({name}) cannot be sent to a worker process: "
                f"{type(exc).__name__}: {exc}. To fix it, {hint}.",
            ) from exc
        fid = next(self._fids)
        dead, ident = self._dead_fns, id(fn)
        try:
            target = weakref.ref(fn, lambda _ref: dead.append((ident, fid)))
        except TypeError:  # not weakly referenceable: keep it (and its id) for the pool's lifetime
            def target(fn=fn):
                return fn
        return _Fn(fid, data, target)

    def _drop_dead_functions(self) -> None:
        """Forget functions that were garbage-collected, and tell the workers to forget them."""
        dead, cache = self._dead_fns, self._fn_cache
        while dead:
            ident, fid = dead.pop()
            entry = cache.get(ident)
            if entry is not None and entry.fid == fid:
                del cache[ident]
            for w in self._workers:
                if fid in w.known:
                    w.known.discard(fid)
                    w.forget.append(fid)

    # -- the scheduling loop --------------------------------------------------------------------

    def _loop(self, run: _Run) -> None:
        select = self._selector.select
        while run.in_flight:
            self._handle(run, select())

    def _handle(self, run: _Run | None, events: list) -> None:
        """Act on selector events: replies to read, buffered messages to write, deaths."""
        for key, _ in events:
            w, what = key.data
            if w.dead:
                continue  # an event about a worker discarded earlier in this batch
            if what == _READ:
                self._read(run, w)
            elif what == _WRITE:
                self._flush(w)
            else:
                self._exited(run, w)

    def _read(self, run: _Run | None, w: _Worker) -> None:
        """The worker's pipe is readable: handle the replies it holds, or its end."""
        if self._receive(run, w) < 0:
            self._exited(run, w)

    def _receive(self, run: _Run | None, w: _Worker) -> int:
        """Read what the pipe holds, without blocking; handle every complete reply.

        Returns 1 if something was read, 0 if nothing was there, -1 at the end of the pipe.
        A reply that arrives in pieces is assembled in ``w.inbuf`` (so a large result never
        holds up the other workers).  ``w.reading`` stays set if this is interrupted.
        """
        w.reading = True
        if w.sock is None:  # blocking reads on this platform
            try:
                data = w.conn.recv_bytes()
            except (EOFError, OSError):
                return -1
            self._reply(run, w, data)
            w.reading = False
            return 1
        try:
            chunk = w.sock.recv(min(max(_CHUNK, w.need), _MAX_CHUNK), _DONTWAIT)
        except BlockingIOError:
            w.reading = False
            return 0
        except OSError:
            return -1
        if not chunk:
            return -1
        buf = w.inbuf
        buf += chunk
        frames = []
        pos, n, need = 0, len(buf), 0
        while n - pos >= 4:
            (size,) = _INT32(buf, pos)
            start = pos + 4
            if size < 0:  # a frame of 2 GiB or more: the length follows as 8 bytes
                if n - pos < 12:
                    need = 12 - (n - pos)
                    break
                (size,) = _UINT64(buf, start)
                start += 8
            end = start + size
            if end > n:
                need = end - n
                break
            frames.append(buf[start:end])
            pos = end
        if pos:
            del buf[:pos]
        w.need = need
        for data in frames:
            self._reply(run, w, data)
        w.reading = False
        return 1

    def _reply(self, run: _Run | None, w: _Worker, data: bytes) -> None:
        """Handle one reply: store a result and dispatch what it made ready, or record a failure."""
        try:
            run_id, task, status, payload = pickle.loads(data)
        except Exception as exc:  # a result that does not unpickle here; replies come in order
            if run is None or not w.assigned:
                return
            run_id, task, status, payload = run.run_id, w.assigned[0], _UNLOADABLE, exc
        if run is None or run_id != run.run_id:
            return  # not this run's (cannot happen while I7 holds; ignored all the same)
        assigned = w.assigned
        if assigned and assigned[0] == task:
            assigned.popleft()
        else:
            try:
                assigned.remove(task)
            except ValueError:
                return
        run.in_flight -= 1
        if status == _OK:
            if run.stopped:
                return
            made = run.plan.finish(task, payload, run.deps[task], run.dependents[task])
            run.pending -= 1
            ready = run.ready
            if made:
                made.reverse()  # the first one made ready is popped first
                ready.extend(made)
            if ready or w.keep_tail >= 0:  # (the second: a chain link may now fit behind it)
                self._dispatch(run, w)
        elif status != _SKIPPED:
            self._fail(run, task, status, payload)

    def _fail(self, run: _Run, task: int, status: int, payload: object) -> None:
        if run.error is None:
            run.error = (task, status, payload)
        self._stop(run)

    def _stop(self, run: _Run) -> None:
        """Fail fast: dispatch nothing more, and let no queued task of this run start."""
        if run.stopped:
            return
        run.stopped = True
        run.ready.clear()
        if self._cancel is not None and self._cancel.value < run.run_id:
            self._cancel.value = run.run_id

    def _dispatch(self, run: _Run, prefer: _Worker | None) -> None:
        """Assign ready tasks, then chain links, while I1 and I2 allow; one message per worker."""
        ready = run.ready
        room = run.bound - run.in_flight
        if room <= 0 or run.stopped:
            return
        slots, workers = self._slots, self._workers
        batches: dict[_Worker, list[int]] = {}
        for _ in range(min(room, len(ready))):
            # The least-loaded worker, ties going to the one that just finished: in steady state
            # the slot a reply frees is refilled at once, and an idle worker never waits.
            best, best_load = None, slots
            if prefer is not None and not prefer.dead:
                load = len(prefer.assigned) + len(batches.get(prefer, ()))
                if load < best_load:
                    best, best_load = prefer, load
            for w in workers:
                if not w.dead:
                    load = len(w.assigned) + len(batches.get(w, ()))
                    if load < best_load:
                        best, best_load = w, load
            if best is None:
                break
            batches.setdefault(best, []).append(ready.pop())
            room -= 1
        # Chain links with what room is left: a task whose only unfinished dependency is the
        # last task queued at a worker goes right behind it, and takes its result there.
        links = run.links
        if room > 0:
            if prefer is not None and not prefer.dead and prefer not in batches:
                batches[prefer] = []
            for w, batch in batches.items():
                while room > 0 and len(w.assigned) + len(batch) < slots:
                    if batch:
                        tail = batch[-1]
                    elif w.keep_tail >= 0 and w.assigned and w.assigned[-1] == w.keep_tail:
                        tail = w.keep_tail
                    else:
                        break
                    u = _linkable(run, tail)
                    if u < 0:
                        break
                    run.remaining[u] = 0  # never made ready: tail's reply takes it below 0
                    links[u] = tail
                    batch.append(u)
                    room -= 1
        # Pickle everything first: a value that does not pickle fails the run before any of
        # these tasks is sent.
        values, deps, consumers = run.values, run.deps, run.consumers
        fid_of, fn_data = run.fid_of, run.fn_data
        dumps = pickle.dumps
        messages = []
        for w, batch in batches.items():
            if not batch:
                continue
            items, defs = [], []
            known = w.known
            new: set[int] = set()
            last = len(batch) - 1
            for k, t in enumerate(batch):
                ds = deps[t]
                link = links.pop(t, -1)
                try:
                    if link < 0:
                        blob = dumps([values[d] for d in ds], _PROTOCOL)
                        positions = ()
                    else:
                        blob = dumps([None if d == link else values[d] for d in ds], _PROTOCOL)
                        positions = tuple(i for i, d in enumerate(ds) if d == link)
                except Exception as exc:
                    self._fail(run, t, _UNSENDABLE, _culprit(run, t, link, exc))
                    return
                flags = _SEND
                if k < last:
                    nxt = batch[k + 1]
                    if links.get(nxt) == t:
                        flags = _KEEP
                        if consumers[t] != deps[nxt].count(t):  # someone else needs it too
                            flags |= _SEND
                elif _linkable(run, t) >= 0:
                    flags |= _KEEP
                fid = fid_of[t]
                items.append((t, fid, blob, flags, link, positions))
                if fid not in known and fid not in new:
                    new.add(fid)
                    defs.append((fid, fn_data[fid]))
            messages.append((w, batch, defs, items))
        run_id = run.run_id
        for w, batch, defs, items in messages:
            forget = w.forget
            if forget:
                w.forget = []
            data = dumps((run_id, defs, forget, items), _PROTOCOL)
            if defs:
                w.known.update(fid for fid, _ in defs)
            w.assigned.extend(batch)
            w.keep_tail = batch[-1] if items[-1][3] & _KEEP else -1
            run.in_flight += len(batch)
            queued = len(w.assigned) - 1
            if queued > run.peak_queue_len:
                run.peak_queue_len = queued
            self._send(w, data)
        if run.in_flight > run.peak_in_flight:
            run.peak_in_flight = run.in_flight

    # -- pipes ----------------------------------------------------------------------------------

    def _send(self, w: _Worker, data: bytes) -> None:
        if w.sock is None:  # no non-blocking sends on this platform
            try:
                w.conn.send_bytes(data)
            except OSError:
                pass  # the worker is gone: its sentinel reports it
            return
        out = w.outbuf
        idle = not out
        n = len(data)
        if n <= _SMALL:
            out.append(_header(n) + data)
        else:
            out.append(_header(n))
            out.append(memoryview(data))
        if idle:
            self._flush(w)

    def _flush(self, w: _Worker) -> None:
        """Write what the pipe takes without blocking; watch for room if anything is left."""
        out, send = w.outbuf, w.sock.send
        try:
            while out:
                head = out[0]
                sent = send(head, _DONTWAIT)
                if sent == len(head):
                    out.popleft()
                else:
                    out[0] = memoryview(head)[sent:]
                    break
        except BlockingIOError:
            pass
        except OSError:
            out.clear()  # the worker is gone: its sentinel reports it
        if bool(out) != w.writing:
            if out:
                self._selector.register(w.sock.fileno(), selectors.EVENT_WRITE, (w, _WRITE))
            else:
                self._selector.unregister(w.sock.fileno())
            w.writing = bool(out)

    # -- failures -------------------------------------------------------------------------------

    def _exited(self, run: _Run | None, w: _Worker) -> None:
        """A worker's process ended (or its pipe closed): fail the task it was running."""
        if w.dead:
            return
        w.dead = True  # _dispatch skips it from now on
        # Replies it sent before it died count.
        if w.sock is None:
            while w.conn.poll() and self._receive(run, w) > 0:
                pass
        else:
            while self._receive(run, w) > 0:
                pass
        w.reading = False
        _stop_process(w.proc, terminate=False)
        lost = w.assigned
        if lost and run is not None:
            run.in_flight -= len(lost)
            self._fail(run, lost[0], _CRASHED, w.proc.exitcode)
            lost.clear()
        self._discard(w)
        if run is not None and not run.stopped:
            # It died idle, mid-run: replace it now so that the run goes on.
            self._workers[w.index] = self._spawn(w.index)
            if run.ready:
                self._dispatch(run, None)

    def _abort(self, run: _Run) -> None:
        """Ctrl-C (or any exception) in the loop: stop, give running tasks a grace period, kill."""
        self._stop(run)
        if self._selector is None:
            return
        workers = self._workers
        # A worker interrupted mid-read or with a half-written message has lost the framing.
        for w in workers:
            if not w.dead and (w.reading or w.outbuf):
                self._kill(w)
        deadline = time.monotonic() + _INTERRUPT_GRACE
        try:
            while any(w.assigned for w in workers if not w.dead):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._handle(run, self._selector.select(left))
        except BaseException:  # a second Ctrl-C: stop waiting
            pass
        for w in workers:
            if not w.dead and (w.assigned or w.outbuf or w.reading):
                self._kill(w)
            w.assigned.clear()

    def _raise(self, run: _Run) -> None:
        task, status, payload = run.error
        key = run.keys[task]
        if status == _CRASHED:
            raise WorkerCrashedError(key, payload)
        if status == _UNSENDABLE:
            dep, exc = payload
            if dep >= 0:
                what = f"the value of {run.keys[dep]!r}"
            else:
                what = "its arguments"
            raise TaskError(
                key,
                f"cannot send the inputs of task {key!r} to a worker process: {what} cannot be pickled "
                f"({type(exc).__name__}: {exc}). Make it picklable, or use backend='threads'.",
            ) from exc
        if status == _UNLOADABLE:
            raise TaskError(
                key,
                f"the result of task {key!r} could not be unpickled in the parent process "
                f"({type(payload).__name__}: {payload})",
            ) from payload
        exc = _remote_exception(payload)
        summary = payload[1]
        if status == _pw.RAISED:
            if isinstance(exc, Exception):
                raise _task_failed(key, exc) from exc
            raise exc
        if status == _pw.BAD_FUNCTION:
            message = (
                f"the function of task {key!r} could not be loaded in a worker process ({summary}). "
                "Define it at module level in a module the workers can import, install the "
                "ftdag[cloudpickle] extra, or use backend='threads'."
            )
        elif status == _pw.BAD_ARGS:
            message = (
                f"the inputs of task {key!r} could not be unpickled in a worker process ({summary}): "
                "their classes must be importable by the workers, or use backend='threads'."
            )
        else:
            message = (
                f"task {key!r} returned a value that cannot be pickled to send it back from its worker "
                f"process ({summary}). Return a picklable value, or use backend='threads'."
            )
        raise TaskError(key, message) from exc


def _linkable(run: _Run, t: int) -> int:
    """A planned dependent of ``t`` whose only unfinished dependency is ``t``, or -1.

    Only small fan-outs are searched, so that this stays O(1) per task.
    """
    dependents = run.dependents[t]
    if len(dependents) > 8:
        return -1
    remaining, deps = run.remaining, run.deps
    for u in dependents:
        r = remaining[u]
        if 0 < r <= 4 and deps[u].count(t) == r:
            return u
    return -1


def _culprit(run: _Run, task: int, link: int, exc: Exception) -> tuple[int, Exception]:
    """Which dependency of ``task`` does not pickle (``-1`` if none alone), with its error."""
    for d in run.deps[task]:
        if d == link:
            continue
        try:
            pickle.dumps(run.values[d], _PROTOCOL)
        except Exception as e:
            return d, e
    return -1, exc


def _close_pipe(w: _Worker) -> None:
    for obj in (w.conn, w.sock):
        if obj is not None:
            try:
                obj.close()
            except OSError:
                pass


def _stop_process(proc, terminate: bool) -> None:
    """Wait for ``proc`` to exit, terminating (then killing) it if asked or if it does not."""
    if terminate:
        try:
            proc.terminate()
        except (OSError, ValueError):
            pass
    proc.join(_JOIN_TIMEOUT)
    if proc.exitcode is None:
        proc.terminate()
        proc.join(_JOIN_TIMEOUT)
    if proc.exitcode is None:
        proc.kill()
        proc.join()


def _shutdown(workers: list[_Worker]) -> None:
    """Ask every live worker to exit, wait for them, and terminate those that do not go."""
    for w in workers:
        if w.dead:
            continue
        try:
            if w.sock is not None and not w.outbuf:
                w.sock.send(_header(0), _DONTWAIT)
            elif w.sock is None:
                w.conn.send_bytes(b"")
            else:
                raise BlockingIOError
        except OSError:  # it could not be told: terminate it
            w.dead = True
            _stop_process(w.proc, terminate=True)
    for w in workers:
        w.dead = True
        if w.proc.exitcode is None:
            _stop_process(w.proc, terminate=False)
        _close_pipe(w)
        w.outbuf.clear()
        w.assigned.clear()
