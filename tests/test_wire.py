"""``ftdag._wire``: frames as :class:`multiprocessing.connection.Connection` writes and reads
them (the workers use a Connection), and the parent's non-blocking end of a pipe, over real
socket pairs.  A thread plays the worker's end where a side must block."""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import struct
import threading
from multiprocessing.connection import Connection

import pytest

from ftdag._wire import READABLE, SHUTDOWN, WRITABLE, Pipe, header, split_frames
from ftdag.testing import DEFAULT_TIMEOUT

PAYLOADS = [b"", b"x", bytes(range(256)) * 40, b"\x00" * 20_000]


def frame(data: bytes) -> bytes:
    return header(len(data)) + data


def in_thread(fn):
    """Call ``fn`` in a daemon thread; return a function that waits for its result."""
    results = []
    thread = threading.Thread(target=lambda: results.append(fn()), daemon=True)
    thread.start()

    def result():
        thread.join(DEFAULT_TIMEOUT)
        assert results, f"the thread raised, or did not finish within {DEFAULT_TIMEOUT}s"
        return results[0]

    return result


@pytest.fixture
def raw_and_conn():
    """A raw socket and a Connection on the other end of the same socket pair."""
    raw, other = socket.socketpair()
    conn = Connection(other.detach())
    raw.settimeout(DEFAULT_TIMEOUT)
    yield raw, conn
    raw.close()
    conn.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the other end closed early"
        data += chunk
    return bytes(data)


def test_frames_are_what_connection_writes(raw_and_conn):
    raw, conn = raw_and_conn
    for data in PAYLOADS:
        conn.send_bytes(data)
    wire = recv_exactly(raw, sum(4 + len(d) for d in PAYLOADS))
    assert wire == b"".join(frame(d) for d in PAYLOADS)
    frames, used, need = split_frames(bytearray(wire))
    assert frames == PAYLOADS and used == len(wire) and need == 0


def test_connection_reads_what_header_writes(raw_and_conn):
    raw, conn = raw_and_conn
    for data in PAYLOADS:
        raw.sendall(frame(data))
        assert conn.recv_bytes() == data
    # The large-frame layout (length -1, then 8 bytes of length) is read the same way by both,
    # whatever the size: shown here with a small one.
    raw.sendall(struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
    assert conn.recv_bytes() == b"hello"
    frames, used, need = split_frames(struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello")
    assert frames == [b"hello"] and used == 17 and need == 0


def test_split_frames_at_every_cut():
    # Every prefix of a stream of frames: the complete frames, where they end, what is missing.
    wire = b"".join(frame(d) for d in PAYLOADS)
    ends, pos = [], 0
    for d in PAYLOADS:
        pos += 4 + len(d)
        ends.append(pos)
    for cut in range(len(wire) + 1):
        frames, used, need = split_frames(bytearray(wire[:cut]))
        complete = [e for e in ends if e <= cut]
        assert frames == PAYLOADS[: len(complete)]
        assert used == (complete[-1] if complete else 0)
        left = cut - used
        if left < 4:
            assert need == 0  # the next header is not there yet
        else:
            assert need == 4 + len(PAYLOADS[len(complete)]) - left


@pytest.mark.parametrize("n, size", [(0, 4), (0x7FFFFFFF, 4), (0x80000000, 12), (3 << 30, 12), ((5 << 32) + 7, 12)])
def test_header_sizes(n, size):
    assert len(header(n)) == size


def test_large_frame_header_decodes_without_the_data():
    n = (3 << 30) + 12345  # over 2 GiB: only the header and a few bytes of data exist
    h = header(n)
    assert h[:4] == struct.pack("!i", -1)
    frames, used, need = split_frames(bytearray(h + b"abc"))
    assert frames == [] and used == 0 and need == n - 3
    for cut in range(4, 12):  # the 8-byte length itself arrives in pieces
        assert split_frames(bytearray(h[:cut])) == ([], 0, 12 - cut)
    # A complete small frame before it is returned, and the large one still reported.
    frames, used, need = split_frames(bytearray(frame(b"before") + h))
    assert frames == [b"before"] and used == 10 and need == n


@pytest.fixture
def pipe_pair():
    """The parent's Pipe (in a selector) and the worker's Connection, on a real pipe."""
    selector = selectors.DefaultSelector()
    parent, child = multiprocessing.Pipe(duplex=True)
    owner = object()
    pipe = Pipe(parent, selector, owner)
    yield pipe, child, selector, owner
    pipe.unwatch()
    pipe.close()
    child.close()
    selector.close()


def wait_for(selector, what):
    events = selector.select(DEFAULT_TIMEOUT)
    assert any(key.data[1] == what for key, _ in events), f"no {what} event within {DEFAULT_TIMEOUT}s"


def test_pipe_send_never_blocks_and_finishes_on_writability(pipe_pair):
    pipe, child, selector, owner = pipe_pair
    assert selector.get_key(pipe.conn.fileno()).data == (owner, READABLE)
    big = bytes(range(256)) * (4 * 4096)  # 4 MiB: more than the socket buffers hold
    pipe.send(big)  # returns at once: nothing reads the other end yet
    pipe.send(b"small")
    assert pipe.outbuf and pipe.writing
    assert selector.get_key(pipe.sock.fileno()).data == (owner, WRITABLE)
    reader = in_thread(lambda: [child.recv_bytes(), child.recv_bytes()])
    while pipe.outbuf:
        wait_for(selector, WRITABLE)
        pipe.flush()
    assert reader() == [big, b"small"]
    assert not pipe.writing and pipe.sock.fileno() not in selector.get_map()


def test_pipe_receive_assembles_frames_that_arrive_in_pieces(pipe_pair):
    pipe, child, selector, _ = pipe_pair
    with pytest.raises(BlockingIOError):
        pipe.receive()  # nothing there
    big = bytes(range(256)) * (4 * 4096)
    writer = in_thread(lambda: [child.send_bytes(big), child.send_bytes(b""), child.send_bytes(b"small")])
    frames, reads = [], 0
    while len(frames) < 3:
        wait_for(selector, READABLE)
        got = pipe.receive()
        assert got is not None
        frames += got
        reads += 1
    writer()
    assert frames == [big, b"", b"small"] and reads > 1 and not pipe.inbuf
    child.close()
    wait_for(selector, READABLE)
    assert pipe.receive() is None  # the end of the pipe


def test_pipe_shutdown_is_sent_only_when_nothing_waits(pipe_pair):
    pipe, child, selector, _ = pipe_pair
    assert pipe.send_shutdown() is True
    assert child.recv_bytes() == SHUTDOWN
    big = bytes(range(256)) * (4 * 4096)
    pipe.send(big)
    assert pipe.outbuf
    assert pipe.send_shutdown() is False  # it would land inside the half-written message
    reader = in_thread(child.recv_bytes)
    while pipe.outbuf:
        wait_for(selector, WRITABLE)
        pipe.flush()
    assert reader() == big
    assert not child.poll(0)  # and nothing was slipped in after it
