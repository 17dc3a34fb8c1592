"""What crosses a worker's pipe in the process backend, and the parent's end of that pipe.

Both sides import this module: the parent (:mod:`ftdag._processes`) and the workers
(:mod:`ftdag._process_worker`), so the statuses, flags and message shapes exist once.

Frames
------
Every message is one frame in the format of :class:`multiprocessing.connection.Connection`,
so that a worker simply calls ``conn.send_bytes`` and ``conn.recv_bytes``: a big-endian
signed 32-bit length, then that many bytes.  A frame of 2 GiB or more has the length -1,
followed by its real length as a big-endian unsigned 64-bit number.  The parent reads and
writes its end without blocking (:class:`Pipe`), with :func:`header` and :func:`split_frames`.

Messages
--------
Each message but the two empty ones is a pickle.  Parent to worker::

    (run_id, defs, forget, tasks, store)
                                    defs: [(fid, pickled function)] that the worker lacks,
                                    forget: [fid] whose functions the parent has dropped,
                                    tasks: [(task id, fid, pickled list of arguments,
                                             flags SEND|KEEP, linked task or NO_TASK,
                                             argument positions the linked result fills,
                                             the task's key, attempt)];
                                    no tasks: drop the kept result (the run is over);
                                    attempt: None in a plain run, else (attempt number,
                                    fingerprint to save the result under, or None);
                                    store: None, or the pickled result store of the run
                                    (in the run's first message to the worker)
    SHUTDOWN (empty)                exit

A message carries every task dispatched to that worker at once (several when a run starts,
several slots free up together, or a chain is linked).  Worker to parent::

    HELLO (empty)                        once, first: the worker's loop has started
    (run_id, task id, status, payload[, elapsed])
                                         one per task, in the order the tasks were sent
                                         (elapsed: seconds the attempt took, for a task
                                         of a run with a context).
                                         OK: the result (None unless SEND); SKIPPED: None
                                         (cancelled before it started); an error status:
                                         (pickled exception or None, "Type: message",
                                         traceback text)
"""

from __future__ import annotations

import pickle
import selectors
import socket
import struct
from collections import deque
from collections.abc import Sequence

PROTOCOL = pickle.HIGHEST_PROTOCOL

# Reply statuses, sent by the workers.
OK = 0
SKIPPED = 1  # cancelled before it started
RAISED = 2  # the task raised
BAD_FUNCTION = 3  # the task's function could not be unpickled in the worker
BAD_ARGS = 4  # the task's inputs could not be unpickled in the worker
BAD_RESULT = 5  # the task's result could not be pickled in the worker
UNSAVED = 6  # the task's result could not be saved to the run's store
# Failures the parent records itself, in the same status space (negative: never sent).
CRASHED = -1  # payload: (exit code, whether the worker died before its hello)
UNSENDABLE = -2  # payload: (node id of the input that does not pickle or None, exception)
UNLOADABLE = -3  # payload: the exception raised unpickling the reply

# Task flags.
SEND = 1  # send the result back to the parent
KEEP = 2  # keep the result in the worker for the next task, which may be linked to it

HELLO = b""  # worker to parent
SHUTDOWN = b""  # parent to worker

# What a selector key's data, ``(owner, what)``, says an event is about.
READABLE, WRITABLE, EXITED = 0, 1, 2

_INT32 = struct.Struct("!i")
_UINT64 = struct.Struct("!Q")
_LARGE = _INT32.pack(-1)  # the length that says "the real one follows in 8 bytes"
_MAX_SMALL = 0x7FFFFFFF  # the largest length that fits the 4-byte header
_SMALL = 1 << 16  # a message up to this size is copied behind its header into one write
_CHUNK = 1 << 16  # bytes read at a time, at least
_MAX_CHUNK = 1 << 22  # and at most


def header(n: int) -> bytes:
    """The header of a frame of ``n`` bytes (4 bytes, or 12 from 2 GiB on)."""
    return _INT32.pack(n) if n <= _MAX_SMALL else _LARGE + _UINT64.pack(n)


def split_frames(buf: bytes | bytearray) -> tuple[list[bytes | bytearray], int, int]:
    """Split the start of ``buf`` into complete frames.

    Returns the frames' contents, how many bytes of ``buf`` they took, and how many more bytes
    the incomplete frame after them needs (0 when even its header is not there yet).
    """
    frames = []
    pos, n, need = 0, len(buf), 0
    unpack_int32, unpack_uint64 = _INT32.unpack_from, _UINT64.unpack_from
    while n - pos >= 4:
        (size,) = unpack_int32(buf, pos)
        start = pos + 4
        if size < 0:  # a large frame: the length follows as 8 bytes
            if n - pos < 12:
                need = 12 - (n - pos)
                break
            (size,) = unpack_uint64(buf, start)
            start += 8
        end = start + size
        if end > n:
            need = end - n
            break
        frames.append(buf[start:end])
        pos = end
    return frames, pos, need


def batch(run_id: int, defs: Sequence, forget: Sequence, tasks: Sequence, store: bytes | None = None) -> bytes:
    """A parent-to-worker message (see the module docstring)."""
    return pickle.dumps((run_id, defs, forget, tasks, store), PROTOCOL)


def run_over(run_id: int) -> bytes:
    """The message that makes a worker drop the result it kept for a chain link."""
    return batch(run_id, (), (), ())


def reply(run_id: int, task: int, status: int, payload: object, elapsed: float | None = None) -> bytes:
    """A worker-to-parent reply (see the module docstring); a task of a run with a context
    also reports the seconds its attempt took (``elapsed``)."""
    if elapsed is None:
        return pickle.dumps((run_id, task, status, payload), PROTOCOL)
    return pickle.dumps((run_id, task, status, payload, elapsed), PROTOCOL)


loads = pickle.loads  # decodes a message or a reply


class Pipe:
    """The parent's end of one worker's pipe: framed reads and writes that never block.

    It registers itself in the pool's selector: its connection for reads, with the data
    ``(owner, READABLE)``, and, while bytes wait in ``outbuf``, a duplicate of its socket for
    writes, with ``(owner, WRITABLE)``.
    """

    __slots__ = ("conn", "sock", "selector", "owner", "outbuf", "writing", "inbuf", "need")

    def __init__(self, conn, selector: selectors.BaseSelector, owner: object) -> None:
        self.conn = conn  # the multiprocessing Connection; the selector watches its fd for reads
        # A duplicate of its socket, for send/recv with MSG_DONTWAIT (a Connection blocks).
        self.sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        self.selector = selector
        self.owner = owner  # what the selector events name: the parent's record of the worker
        self.outbuf: deque = deque()  # bytes not yet written: headers, messages, their rests
        self.writing = False  # the sock is registered for writability (outbuf is not empty)
        self.inbuf = bytearray()  # bytes read that do not make a complete frame yet
        self.need = 0  # bytes missing to complete the frame in inbuf, when known
        selector.register(conn.fileno(), selectors.EVENT_READ, (owner, READABLE))

    def send(self, data: bytes) -> None:
        """Queue one message and write what the pipe takes now; the rest goes on writability."""
        out = self.outbuf
        idle = not out
        n = len(data)
        if n <= _SMALL:
            out.append(header(n) + data)
        else:
            out.append(header(n))
            out.append(memoryview(data))
        if idle:
            self.flush()

    def flush(self) -> None:
        """Write what the pipe takes without blocking; watch for room if anything is left."""
        out, send = self.outbuf, self.sock.send
        try:
            while out:
                head = out[0]
                sent = send(head, socket.MSG_DONTWAIT)
                if sent == len(head):
                    out.popleft()
                else:
                    out[0] = memoryview(head)[sent:]
                    break
        except BlockingIOError:
            pass
        except OSError:
            out.clear()  # the worker is gone: its sentinel reports it
        if bool(out) != self.writing:
            if out:
                self.selector.register(self.sock.fileno(), selectors.EVENT_WRITE, (self.owner, WRITABLE))
            else:
                self.selector.unregister(self.sock.fileno())
            self.writing = bool(out)

    def receive(self) -> list | None:
        """Read what the pipe holds, without blocking; return the complete frames in it.

        Returns None at the end of the pipe, and raises :class:`BlockingIOError` if nothing was
        there.  A frame that arrives in pieces is assembled in ``inbuf`` (so a large result
        never holds up the other workers): the list may be empty.
        """
        try:
            chunk = self.sock.recv(min(max(_CHUNK, self.need), _MAX_CHUNK), socket.MSG_DONTWAIT)
        except BlockingIOError:
            raise
        except OSError:
            return None
        if not chunk:
            return None
        buf = self.inbuf
        buf += chunk
        frames, used, self.need = split_frames(buf)
        if used:
            del buf[:used]
        return frames

    def send_shutdown(self) -> bool:
        """Send SHUTDOWN if nothing else is waiting and the pipe takes it now; say whether it did."""
        if self.outbuf:
            return False
        try:
            self.sock.send(header(len(SHUTDOWN)) + SHUTDOWN, socket.MSG_DONTWAIT)
        except OSError:  # BlockingIOError included: it could not be told
            return False
        return True

    def unwatch(self) -> None:
        """Take the pipe out of the selector."""
        fds = [self.conn.fileno()]
        if self.writing:
            fds.append(self.sock.fileno())
            self.writing = False
        for fd in fds:
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    def close(self) -> None:
        """Close both file descriptors and drop what was not written."""
        for obj in (self.conn, self.sock):
            try:
                obj.close()
            except OSError:
                pass
        self.outbuf.clear()
