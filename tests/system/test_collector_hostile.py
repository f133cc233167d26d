"""Keys, versions and hostile input against a running sluice-collector. The
peers here speak the transport by hand (docs/wire-protocol.md, "Stream
transport"), so every byte the spec defines is exercised from outside C++."""
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import time


from collector_helpers import (SEND, Collector, assert_same_packets, expected_packets,
                               read_stream, send, start_send, write_key)

from transport_by_hand import (ACK, CHALLENGE, HEARTBEAT, HELLO, REJECT, VERSION,  # noqa: F401
                               WELCOME,
                               closed_by_collector, connect, crc32c, frame, handshake, hello,
                               message, parse_reject, recv_exact, recv_message)

# ---- keys -----------------------------------------------------------------------------

def test_wrong_key_rejected_on_both_sides(tmp_path, pcapgen):
    pcap = pcapgen(packets=500, nanosecond=True)
    good = write_key(tmp_path / "good.key", "k" * 32)
    bad = write_key(tmp_path / "bad.key", "x" * 32)
    col = Collector(tmp_path / "out", args=["--key-file", good])
    p, _ = send(pcap, col.port, key_file=bad, give_up_ms=1500, reconnect_min_ms=50)
    assert p.returncode == 1
    assert "rejected the connection (auth-failed)" in p.stderr
    assert "key differs" in p.stderr
    assert col.wait_for("authentication failed: the sender's key differs")
    # No key at all: told that one is required.
    p, _ = send(pcap, col.port, give_up_ms=1000)
    assert p.returncode == 1 and "(key-required)" in p.stderr and "requires a key" in p.stderr
    # The right key works, and no packet of the refused attempts was written.
    p, _ = send(pcap, col.port, key_file=good)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    assert col.result()["counters"]["refused_auth"] >= 2
    assert_same_packets(read_stream(tmp_path / "out", 1), expected_packets(pcap))


def test_sender_key_but_collector_without(tmp_path, pcapgen):
    pcap = pcapgen(packets=100, nanosecond=True)
    key = write_key(tmp_path / "k.key", "k" * 32)
    col = Collector(tmp_path / "out")
    p, _ = send(pcap, col.port, key_file=key, give_up_ms=1000)
    assert p.returncode == 1 and "(key-unexpected)" in p.stderr and "--key-file" in p.stderr
    assert col.stop() == 0


def test_collector_that_cannot_prove_the_key(tmp_path):
    """A fake collector answering with a wrong proof: the sender refuses it (a
    collector's ACKs make a sender free its buffers: it must be the real one)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    key = write_key(tmp_path / "k.key", "k" * 32)
    pcap = tmp_path / "one.pcap"
    pcap.write_bytes(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1) +
                     struct.pack("<IIII", 1, 2, 60, 60) + b"\1" * 60)
    proc = subprocess.Popen([str(SEND), "--pcap", str(pcap), "--to", f"127.0.0.1:{port}",
                             "--key-file", str(key), "--give-up-ms", "1500"],
                            stderr=subprocess.PIPE, text=True)
    conn, _ = srv.accept()
    nonce = os.urandom(32)
    conn.sendall(message(CHALLENGE, struct.pack("<II", 1, 0) + nonce))
    mtype, body = recv_message(conn)
    assert mtype == HELLO
    conn.sendall(message(WELCOME, struct.pack("<QII", 0, 0, 0) + b"\0" * 32))
    mtype, body = recv_message(conn)
    assert mtype == REJECT and parse_reject(body)[0] == 2  # auth-failed, from the sender
    conn.close()
    srv.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "did not prove it holds the key" in err


# ---- versions ---------------------------------------------------------------------

def test_wrong_version_rejected_with_its_message(tmp_path):
    col = Collector(tmp_path / "out")
    s, _, nonce = connect(col.port)
    msg, _ = hello(nonce, version=3)
    s.sendall(msg)
    reason, text = closed_by_collector(s)
    assert reason == 1  # version
    assert "sender speaks transport version 3, this collector speaks 2" in text
    assert col.wait_for("transport version 3")
    assert col.stop() == 0
    assert col.result()["counters"]["refused_version"] == 1


def test_sender_facing_a_newer_collector(tmp_path):
    """The sender's side of a version mismatch: a collector whose CHALLENGE says
    version 3 gets a REJECT, and the sender says what to do."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    pcap = tmp_path / "one.pcap"
    pcap.write_bytes(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1) +
                     struct.pack("<IIII", 1, 2, 60, 60) + b"\1" * 60)
    proc = subprocess.Popen([str(SEND), "--pcap", str(pcap), "--to", f"127.0.0.1:{port}",
                             "--give-up-ms", "1500"], stderr=subprocess.PIPE, text=True)
    conn, _ = srv.accept()
    conn.sendall(message(CHALLENGE, struct.pack("<II", 0, 0) + os.urandom(32), version=3))
    mtype, body = recv_message(conn)
    assert mtype == REJECT
    reason, text = parse_reject(body)
    assert reason == 1 and "collector speaks transport version 3" in text
    conn.close()
    srv.close()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "the collector speaks transport version 3, this sender speaks 2" in err


# ---- hostile input ------------------------------------------------------------------

def test_hostile_peers_never_stall_a_real_sender(tmp_path, pcapgen):
    """While a real sender streams, other peers send garbage, malformed messages,
    frames with bad CRCs, oversized lengths, truncated frames, or nothing at all.
    Each is dropped with a logged reason and a counter; the real stream is exact."""
    pcap = pcapgen(packets=20000, nanosecond=True, seed=4)
    out = tmp_path / "out"
    col = Collector(out, args=["--peer-timeout", "500"])
    sender, report = start_send(pcap, col.port, stream_id=1, rate=10000)
    port = col.port
    expect = {"dropped_protocol": 0, "dropped_bad_frame": 0, "dropped_timeout": 0}

    # Garbage instead of a HELLO.
    s, _, _ = connect(port)
    s.sendall(os.urandom(3000))
    assert closed_by_collector(s)[0] == 5
    expect["dropped_protocol"] += 1

    # An HTTP request.
    s, _, _ = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    closed_by_collector(s)
    expect["dropped_protocol"] += 1

    # A HELLO with a bad CRC, and one with an impossible length.
    s, _, nonce = connect(port)
    msg = bytearray(hello(nonce)[0])
    msg[20] ^= 0xFF
    s.sendall(bytes(msg))
    assert closed_by_collector(s)[0] == 5
    expect["dropped_protocol"] += 1
    s, _, _ = connect(port)
    s.sendall(struct.pack("<4sBBH", b"SLCT", VERSION, HELLO, 60000))
    closed_by_collector(s)
    expect["dropped_protocol"] += 1

    # A frame before the handshake.
    s, _, _ = connect(port)
    s.sendall(frame(50, 0, 0, [(1, b"x" * 60)]))
    closed_by_collector(s)
    expect["dropped_protocol"] += 1

    # After a valid handshake: a frame with a bad payload CRC.
    s, _ = handshake(port, stream_id=51)
    f = bytearray(frame(51, 0, 0, [(1, b"y" * 100)]))
    f[-1] ^= 1
    s.sendall(bytes(f))
    reason, text = closed_by_collector(s)
    assert reason == 5 and "payload CRC mismatch" in text
    expect["dropped_bad_frame"] += 1

    # Compressed payloads of garbage: the reader decodes before it checks the
    # payload CRC, so the decoders meet these bytes. With a wrong CRC the
    # frame is refused for the CRC whatever the decoder made of it; with a
    # valid one (a hostile sender computes it) the decoder refuses it.
    for codec, stream in ((1, 60), (2, 61)):  # LZ4, zstd
        for good_crc in (False, True):
            s, _ = handshake(port, stream_id=stream)
            junk = b"\xff" * 64
            head = struct.pack("<4sBBBBHHIQQQIII", b"SLCF", 1, 8, codec, 0, 0, 0, 1, stream, 0,
                               0, 4096, len(junk),
                               crc32c(junk) ^ (0 if good_crc else 1)) + b"\0" * 8
            s.sendall(head + struct.pack("<I", crc32c(head)) + junk)
            reason, text = closed_by_collector(s)
            want = "codec rejected the frame payload" if good_crc else "payload CRC mismatch"
            assert reason == 5 and want in text, (codec, good_crc, text)
            expect["dropped_bad_frame"] += 1

    # An oversized stored length (header CRC fixed up so only the length is wrong).
    s, _ = handshake(port, stream_id=52)
    f = bytearray(frame(52, 0, 0, [(1, b"z" * 64)]))
    struct.pack_into("<II", f, 40, 1 << 30, 1 << 30)
    struct.pack_into("<I", f, 60, crc32c(bytes(f[:60])))
    s.sendall(bytes(f[:64]))
    reason, text = closed_by_collector(s)
    assert reason == 5 and "larger than this reader's limit" in text
    expect["dropped_bad_frame"] += 1

    # A frame of another stream on this connection.
    s, _ = handshake(port, stream_id=53)
    s.sendall(frame(54, 0, 0, [(1, b"w" * 64)]))
    reason, text = closed_by_collector(s)
    assert "belongs to stream 54" in text
    expect["dropped_protocol"] += 1

    # Garbage after two good frames: the good ones are written and acknowledged.
    s, _ = handshake(port, stream_id=55)
    s.sendall(frame(55, 0, 0, [(1000, b"a" * 70)]) + frame(55, 1, 1, [(2000, b"b" * 80)]) +
              b"\xde\xad\xbe\xef" * 10)
    reason, text = closed_by_collector(s)
    assert reason == 5 and "neither a frame nor a control message" in text
    expect["dropped_protocol"] += 1

    # A truncated frame, then the peer goes away.
    s, _ = handshake(port, stream_id=56)
    s.sendall(frame(56, 0, 0, [(1, b"t" * 500)])[:300])
    s.close()

    # Peers that connect and send nothing, or stop after the handshake's start.
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    s, _, nonce = connect(port)
    s.sendall(hello(nonce)[0][:30])
    idle.append(s)
    expect["dropped_timeout"] += 4
    time.sleep(1.5)
    for s in idle:
        assert closed_by_collector(s, timeout=10)[0] == 6  # timeout

    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.proc.poll() is None, "the collector died"
    assert col.stop() == 0, col.log()
    counters = col.result()["counters"]
    for k, v in expect.items():
        assert counters[k] == v, f"{k}: {counters[k]} != {v}\n{col.log()}"
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
    got55 = read_stream(out, 55)
    assert [p["data"] for p in got55] == [b"a" * 70, b"b" * 80]
    assert read_stream(out, 56) == []
    log = col.log()
    assert "payload CRC mismatch" in log and "no handshake within 500 ms" in log


def test_replayed_connection_takes_over_and_duplicates_are_discarded(tmp_path):
    out = tmp_path / "out"
    col = Collector(out)
    s1, resume, secret = handshake(col.port, stream_id=60, session_id=77, with_secret=True)
    assert resume == 0
    s1.sendall(frame(60, 0, 0, [(1, b"a" * 60)]) + frame(60, 1, 1, [(2, b"b" * 60)]))
    mtype, body = recv_message(s1)
    while struct.unpack("<Q", body)[0] < 2:
        mtype, body = recv_message(s1)
    assert mtype == ACK
    # The same session again, proving its secret: resumes after what was
    # written; a replay of frame 1 is a duplicate; frame 3 after a missing 2
    # is a gap.
    s2, resume = handshake(col.port, stream_id=60, session_id=77, position=(1, 1),
                           resume_secret=secret)
    assert resume == 2
    reason, text = closed_by_collector(s1)
    assert reason == 8  # replaced
    s2.sendall(frame(60, 1, 1, [(2, b"b" * 60)]) + frame(60, 3, 3, [(4, b"d" * 60)]))
    while True:
        mtype, body = recv_message(s2)
        if mtype == ACK and struct.unpack("<Q", body)[0] == 4:
            break
    s2.sendall(message(HEARTBEAT, struct.pack("<Q", 1)))
    mtype, body = recv_message(s2)
    assert mtype == ACK and struct.unpack("<Q", body)[0] == 4
    s2.close()
    assert col.stop() == 0
    st = col.stream(60)["run"]
    assert st["frames_written"] == 3 and st["frames_duplicate"] == 1
    assert st["frames_lost"] == 1 and st["packets_lost"] == 1 and st["gaps"] == 1
    assert [p["data"][:1] for p in read_stream(out, 60)] == [b"a", b"b", b"d"]
    assert col.result()["counters"]["dropped_replaced"] == 1
