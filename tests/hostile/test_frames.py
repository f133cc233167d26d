"""Frames built to break the collector's bounds, each against a real
sluice-collector while an honest stream is written."""
import struct

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               send, start_send)
from transport_by_hand import (ACK, HEARTBEAT, closed_by_collector, frame, handshake, message,
                               recv_message)


def honest_stream_survives(col, pcap, out, stream_id=1):
    """Sends `pcap` as stream `stream_id` to completion and checks every packet."""
    p, rep = send(pcap, col.port, stream_id=stream_id)
    assert p.returncode == 0, p.stderr
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    return rep


def test_frame_naming_thousands_of_interfaces(tmp_path, pcapgen):
    """A frame naming 3000 (port, queue) interfaces used to write past the
    collector's interface table ("malloc(): corrupted top size"). Now it is
    refused with REJECT limit and counted; the honest stream is exact."""
    honest = pcapgen("honest.pcap", packets=5000, nanosecond=True)
    attack = pcapgen("attack.pcap", packets=20000)
    out = tmp_path / "out"
    col = Collector(out)
    attacker, _ = start_send(attack, col.port, stream_id=2, queues=3000, snaplen=64,
                             codec="none", reconnect_min_ms=20, reconnect_max_ms=50)
    assert col.wait_for("interfaces, more than a pcapng file", timeout=60), col.log()
    honest_stream_survives(col, honest, out)
    attacker.terminate()
    _, err = attacker.communicate(timeout=60)
    assert "rejected the connection (limit)" in err, err
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    assert col.stop() == 0
    assert col.result()["counters"]["dropped_over_limit"] >= 1
    assert_same_packets(read_stream(out, 1), expected_packets(honest))


def ack_reaching(s, want):
    """Reads ACKs until one says `want`."""
    while True:
        mtype, body = recv_message(s)
        if mtype == ACK and struct.unpack("<Q", body)[0] >= want:
            return struct.unpack("<Q", body)[0]


def test_sequence_past_the_last_one_is_refused_and_duplicates_stay_suppressed(tmp_path, pcapgen):
    """A frame with sequence 2^64-1 made the collector expect 0 next: from
    then on every replay was written again. Now such a frame is refused as
    corrupt (no sender reaches it), counted, and a replay of frame 0 on the
    next connection is still a duplicate."""
    honest = pcapgen("honest.pcap", packets=3000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out)
    # The honest stream of another sender, all along.
    sender, _ = start_send(honest, col.port, stream_id=1, rate=1000)
    assert col.wait_for("stream 1 connected", timeout=30), col.log()
    s, resume, secret = handshake(col.port, stream_id=70, session_id=99, position=(0, 0),
                                  with_secret=True)
    assert resume == 0
    s.sendall(frame(70, 0, 0, [(1, b"a" * 60)]))
    assert ack_reaching(s, 1) == 1
    s.sendall(frame(70, 2**64 - 1, 1, [(2, b"z" * 60)]))
    reason, text = closed_by_collector(s)
    assert reason == 5 and "2^64-1" in text, (reason, text)
    s2, resume = handshake(col.port, stream_id=70, session_id=99, position=(0, 0),
                           resume_secret=secret)
    assert resume == 1
    s2.sendall(frame(70, 0, 0, [(1, b"a" * 60)]) + message(HEARTBEAT, struct.pack("<Q", 1)))
    assert ack_reaching(s2, 1) == 1
    s2.close()
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    assert col.stop() == 0
    st = col.stream(70)["run"]
    assert st["frames_written"] == 1 and st["frames_duplicate"] == 1, st
    assert col.result()["counters"]["dropped_bad_frame"] == 1
    assert [p["data"][:1] for p in read_stream(out, 70)] == [b"a"]
    assert_same_packets(read_stream(out, 1), expected_packets(honest))
