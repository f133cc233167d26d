"""Resources a sender can make the collector hold: a stream per stream id
ever seen, and receive memory per connection. Each attack runs against a
real sluice-collector; the honest stream beside it must be written exactly
and the attack must move a named counter."""
import functools
import os
import resource
import socket
import struct
import threading

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               send, start_send)
import transport_by_hand
from transport_by_hand import (ACK, REJECT, crc32c, frame, handshake, parse_reject, recv_message)


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def one_frame_stream(port, stream_id):
    """A sender that writes one frame of stream `stream_id`, waits for its
    ACK and leaves."""
    s, resume = handshake(port, stream_id=stream_id, session_id=stream_id, position=(0, 0))
    s.sendall(frame(stream_id, resume, 0, [(stream_id, bytes([stream_id & 0xFF]) * 60)]))
    while True:
        mtype, body = recv_message(s)
        if mtype == ACK and struct.unpack("<Q", body)[0] >= resume + 1:
            break
    s.close()


def test_cycling_stream_ids_holds_no_descriptor_per_stream(tmp_path, pcapgen):
    """A peer writing stream after stream used to leave each one open (its
    state file, capture file and index: three descriptors and ~60 KB each)
    until the collector ran out of descriptors; a restart then exited 1,
    recovering them all at once. Now at most --max-streams are open, the
    rest closed and counted, and a restart under a small descriptor limit
    recovers every one of them."""
    pcap = pcapgen(packets=20000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--max-streams", "8", "--stream-idle-timeout", "0"])
    honest, report = start_send(pcap, col.port, stream_id=1, rate=20000)
    assert col.wait_for("stream 1 connected", timeout=30), col.log()
    baseline = open_fds(col.proc.pid)
    for sid in range(100, 400):
        one_frame_stream(col.port, sid)
    # 7 of the attacker's streams open (one slot is the honest stream's),
    # each with its state file; the rest closed.
    assert open_fds(col.proc.pid) <= baseline + 7 * 3 + 2
    _, err = honest.communicate(timeout=120)
    assert honest.returncode == 0, err
    assert col.stop() == 0
    summary = col.result()
    assert summary["counters"]["streams_retired"] >= 300 - 7, summary["counters"]
    assert len(summary["streams"]) == 301
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
    for sid in (100, 250, 399):
        assert [p["data"][:1] for p in read_stream(out, sid)] == [bytes([sid & 0xFF])]

    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    col = Collector(out, args=["--max-streams", "8"], preexec_fn=few_fds)
    p, _ = send(pcap, col.port, stream_id=2)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    assert len(col.result()["streams"]) == 302
    assert_same_packets(read_stream(out, 2), expected_packets(pcap))


def test_when_every_open_stream_has_a_sender_a_new_stream_is_refused(tmp_path, pcapgen):
    """--max-streams 2 with two connected streams: a third stream is refused
    (busy, counted); once one of them leaves, the third is let in by closing
    the idle one, and the honest stream written after them is exact."""
    pcap = pcapgen(packets=3000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--max-streams", "2"])
    a, _ = handshake(col.port, stream_id=2, session_id=2)
    b, _ = handshake(col.port, stream_id=3, session_id=3)
    try:
        handshake(col.port, stream_id=4, session_id=4)
        raise AssertionError("a third stream was let in")
    except AssertionError as e:
        assert "--max-streams" in str(e), e
    a.close()
    assert col.wait_for("stream 2 from", timeout=30)
    c, _ = handshake(col.port, stream_id=4, session_id=4)
    b.close()
    c.close()
    assert col.wait_for("stream 3 from", timeout=30)
    assert col.wait_for("stream 4 from", timeout=30)
    p, _ = send(pcap, col.port, stream_id=1)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["refused_streams"] == 1, k
    assert k["streams_retired"] >= 2, k
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))


def test_an_idle_stream_is_closed_and_its_sender_resumes_it(tmp_path, pcapgen):
    """--stream-idle-timeout 1: a stream whose sender left is closed (its
    descriptors go back) and reopened by the next sender, which continues
    the same file's sequence: both runs' packets, each once."""
    pcap = pcapgen(packets=2000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--stream-idle-timeout", "1"])
    baseline = open_fds(col.proc.pid)
    p, _ = send(pcap, col.port, stream_id=5)
    assert p.returncode == 0, p.stderr
    assert col.wait_for("stream 5: closed after 1 s without a sender", timeout=30), col.log()
    assert open_fds(col.proc.pid) == baseline
    p, _ = send(pcap, col.port, stream_id=5)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    s = col.stream(5)
    assert s["run"]["packets_written"] == 4000, s
    assert col.result()["counters"]["streams_retired"] >= 1
    assert_same_packets(read_stream(out, 5), expected_packets(pcap, repeat=2))


def test_large_frames_on_many_connections_wait_for_memory_instead_of_taking_it(
        tmp_path, pcapgen, monkeypatch):
    """Every connection could grow a receive buffer as large as its largest
    frame, together without bound. With --max-memory 6M and 4 MiB frames,
    three connections each holding most of a 3 MB frame do not fit: one is
    not read (TCP holds its sender back), counted, and read as soon as
    another's frame is written. Every frame arrives; nothing is refused."""
    honest = pcapgen("honest.pcap", packets=5000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--max-frame-bytes", "4M", "--max-memory", "6M"])
    records = [(i, bytes([65 + i % 26]) * 60000) for i in range(50)]
    # Three frames of one payload: its CRC (pure Python, slow) once.
    monkeypatch.setattr(transport_by_hand, "crc32c", functools.lru_cache(maxsize=8)(crc32c))
    conns = []
    for sid in (11, 12, 13):
        s, resume = handshake(col.port, stream_id=sid, session_id=sid, position=(0, 0))
        f = frame(sid, resume, 0, records)
        assert len(f) > (3 << 20) - (200 << 10)
        s.sendall(f[:1 << 20])  # most of the frame's first MiB; the rest waits
        conns.append((sid, s, f))
    sender, _ = start_send(honest, col.port, stream_id=1)
    acked = {}

    def finish(sid, s, f):
        s.sendall(f[1 << 20:])
        while True:
            mtype, body = recv_message(s)
            assert mtype != REJECT, parse_reject(body)
            if mtype == ACK and struct.unpack("<Q", body)[0] >= 1:
                acked[sid] = True
                return

    threads = [threading.Thread(target=finish, args=c, daemon=True) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(acked) == [11, 12, 13], col.log()
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    for _, s, _ in conns:
        s.close()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["memory_waits"] >= 1, k
    assert k["dropped_protocol"] == 0 and k["dropped_busy"] == 0, k
    for sid in (11, 12, 13):
        assert [p["data"] for p in read_stream(out, sid)] == [d for _, d in records]
    assert_same_packets(read_stream(out, 1), expected_packets(honest))


def test_memory_below_one_frame_is_refused_at_start(tmp_path):
    import subprocess
    from collector_helpers import COLLECTOR
    p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path / "o"), "--max-frame-bytes", "4M",
                        "--max-memory", "5M"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert "--max-memory 5242880 is less than one frame" in p.stderr, p.stderr
