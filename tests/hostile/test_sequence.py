"""Sequence and time, against a real collector while an honest sender
streams: acknowledgements where none belong (an ACK sent to the collector;
an ACK for frames never sent, forged toward a sender on the path), and a
sender that announces no heartbeats and then falls silent. Each is refused
or dropped in words and counted; the honest stream is written exactly."""
import socket
import struct
import threading
import time

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               send, start_send)
from transport_by_hand import (ACK, WELCOME, closed_by_collector, connect, frame,
                               handshake, message, recv_message)


def test_an_ack_sent_to_the_collector_is_refused(tmp_path, pcapgen):
    """ACK is the collector's message: from a peer, before the handshake or
    after frames, it ends the connection as malformed (the frames before it
    are kept)."""
    pcap = pcapgen(packets=4000, nanosecond=True, seed=41)
    out = tmp_path / "out"
    col = Collector(out)
    sender, _ = start_send(pcap, col.port, stream_id=1, rate=2000)
    assert col.wait_for("stream 1 connected", timeout=30), col.log()

    s, _, _ = connect(col.port)
    s.sendall(message(ACK, struct.pack("<Q", 10**9)))
    reason, text = closed_by_collector(s)
    assert reason == 5 and "ACK" in text, (reason, text)

    s, _ = handshake(col.port, stream_id=90)
    s.sendall(frame(90, 0, 0, [(1, b"k" * 64)]) + message(ACK, struct.pack("<Q", 2**64 - 1)))
    reason, text = closed_by_collector(s)
    assert reason == 5 and "unexpected ACK from the sender after frame 0" in text, (reason, text)

    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.proc.poll() is None, col.log()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["dropped_protocol"] == 2, k
    assert [p["data"] for p in read_stream(out, 90)] == [b"k" * 64]
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))


class AckForger:
    """A TCP relay between a sender and the collector that, on the first
    connection only, slips an ACK for frames never sent (sequence 10^12) in
    after the collector's WELCOME: what an attacker on the path of a
    connection without TLS can do."""

    def __init__(self, collector_port):
        self.collector_port = collector_port
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.connections = 0
        self.forged = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.collector_port))
            self.connections += 1
            forge = self.connections == 1
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
            threading.Thread(target=self._to_sender, args=(b, a, forge), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _to_sender(self, collector, sender, forge):
        """Message by message (the collector sends only control messages)."""
        try:
            while True:
                mtype, body = recv_message(collector)
                sender.sendall(message(mtype, body))
                if forge and mtype == WELCOME:
                    sender.sendall(message(ACK, struct.pack("<Q", 10**12)))
                    self.forged += 1
                    forge = False
        except (OSError, EOFError, AssertionError):
            pass
        for s in (collector, sender):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.srv.close()


def test_an_ack_for_frames_never_sent_makes_the_sender_reconnect_and_lose_nothing(
        tmp_path, pcapgen):
    """Believing such an ACK would release frames the collector never
    wrote. The sender calls the collector broken, drops the connection and
    resends from its oldest unacknowledged frame on a new one: the stream is
    exact, and the drop is counted at both ends."""
    pcap = pcapgen(packets=3000, nanosecond=True, seed=42)
    out = tmp_path / "out"
    col = Collector(out)
    relay = AckForger(col.port)
    try:
        p, rep = send(pcap, relay.port, stream_id=2, reconnect_min_ms=20, reconnect_max_ms=100)
    finally:
        relay.close()
    assert p.returncode == 0, p.stderr
    assert relay.forged == 1
    assert "acknowledged frames up to sequence 1000000000000, but this sender sent only" \
        in p.stderr, p.stderr
    assert rep["sender"]["disconnects"] == 1 and rep["sender"]["connects"] == 2, rep["sender"]
    assert col.proc.poll() is None, col.log()
    # The relay passes the sender's close on to the collector by itself: stop
    # the collector only once it has seen both connections end, or the second
    # one would end by the shutdown instead (and count nowhere).
    ends = ("the peer closed the connection", "connection lost", "took over")
    deadline = time.monotonic() + 30
    while sum(col.log().count(e) for e in ends) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert col.stop() == 0
    k = col.result()["counters"]
    # The first connection ends as the sender leaves it (or, if its new one
    # is quicker, as that one takes over); the second when the sender is done.
    assert k["handshakes"] == 2 and k["closed_by_peer"] + k["dropped_replaced"] == 2, k
    assert_same_packets(read_stream(out, 2), expected_packets(pcap))


def test_a_sender_without_heartbeats_that_falls_silent_is_dropped(tmp_path, pcapgen):
    """heartbeat_ms 0 announces no heartbeats: the collector's own
    --peer-timeout bounds the silence (it never waits forever), while the
    honest sender streams on."""
    pcap = pcapgen(packets=4000, nanosecond=True, seed=43)
    out = tmp_path / "out"
    col = Collector(out, args=["--peer-timeout", "500"])
    sender, _ = start_send(pcap, col.port, stream_id=1, rate=2000)
    assert col.wait_for("stream 1 connected", timeout=30), col.log()
    s, _ = handshake(col.port, stream_id=91, heartbeat_ms=0)
    s.sendall(frame(91, 0, 0, [(5, b"h" * 64)]))
    reason, text = closed_by_collector(s, timeout=30)
    assert reason == 6, (reason, text)  # timeout
    assert "nothing received for 500 ms (--peer-timeout; the sender sends no heartbeats)" \
        in text, text
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.proc.poll() is None, col.log()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["dropped_timeout"] == 1, k
    assert [p["data"] for p in read_stream(out, 91)] == [b"h" * 64]
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
