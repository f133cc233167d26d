"""Connections that never complete a handshake, against a real collector:
they must not keep an honest sender out, must not hold resources past the
handshake deadline, and running out of descriptors must not make the
collector spin."""
import resource
import socket
import threading
import time

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               send, start_send)


def silent_connections(port, sources, per_source, stop, opened):
    """Keeps connections open from several loopback source addresses without
    ever sending a byte; reopens what the collector closes, until `stop`."""
    socks = []
    while not stop.is_set():
        for src in sources:
            for _ in range(per_source):
                if stop.is_set():
                    break
                s = socket.socket()
                s.setblocking(True)
                s.settimeout(2)
                try:
                    s.bind((src, 0))
                    s.connect(("127.0.0.1", port))
                    socks.append(s)
                    opened[0] += 1
                except OSError:
                    s.close()
        # Drop the ones the collector closed; keep the rest open.
        alive = []
        for s in socks:
            try:
                s.setblocking(False)
                if s.recv(1 << 16, socket.MSG_PEEK) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        socks = alive
        time.sleep(0.05)
    for s in socks:
        s.close()


def test_silent_handshakes_from_many_sources_do_not_keep_a_sender_out(tmp_path, pcapgen):
    """Hundreds of silent sockets from 40 addresses (8 per address, the
    per-source limit, and 5x the global pending limit), reopened as the
    collector drops them: an honest sender still connects, and its stream is
    exact. Before, pending connections counted toward --max-connections and
    a few hundred of them refused every sender ("busy")."""
    pcap = pcapgen(packets=3000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--max-connections", "300"])
    stop = threading.Event()
    opened = [0]
    sources = [f"127.0.0.{i}" for i in range(2, 42)]
    attacker = threading.Thread(target=silent_connections,
                                args=(col.port, sources, 9, stop, opened), daemon=True)
    attacker.start()
    try:
        deadline = time.time() + 30
        while opened[0] < 360 and time.time() < deadline:
            time.sleep(0.05)
        assert opened[0] >= 360, f"only {opened[0]} silent connections opened"
        p, _ = send(pcap, col.port, stream_id=1, timeout_ms=5000)
        assert p.returncode == 0, p.stderr
    finally:
        stop.set()
        attacker.join(timeout=30)
    assert col.proc.poll() is None, col.log()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["dropped_pending"] > 0, k
    assert k["refused_per_source"] > 0, k
    assert k["handshakes"] == 1
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))


def test_an_established_stream_is_never_refused_because_of_pending_ones(tmp_path, pcapgen):
    """A stream already flowing keeps flowing through a flood of silent
    handshakes from the same address as the sender itself."""
    pcap = pcapgen(packets=20000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--max-pending", "16", "--max-pending-per-source", "4"])
    sender, _ = start_send(pcap, col.port, stream_id=2, rate=20000)
    assert col.wait_for("stream 2 connected", timeout=30), col.log()
    stop = threading.Event()
    opened = [0]
    attacker = threading.Thread(target=silent_connections,
                                args=(col.port, ["127.0.0.1", "127.0.0.9"], 10, stop, opened),
                                daemon=True)
    attacker.start()
    try:
        _, err = sender.communicate(timeout=120)
        assert sender.returncode == 0, err
    finally:
        stop.set()
        attacker.join(timeout=30)
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["refused_per_source"] > 0, k
    assert k["handshakes"] == 1, "the sender never had to reconnect"
    assert_same_packets(read_stream(out, 2), expected_packets(pcap))


def test_a_handshake_never_completed_is_dropped_at_its_deadline(tmp_path):
    col = Collector(tmp_path / "out", args=["--handshake-timeout", "300"])
    s = socket.create_connection(("127.0.0.1", col.port), timeout=10)
    t0 = time.time()
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert time.time() - t0 < 10
    assert col.wait_for("no handshake within 300 ms (--handshake-timeout)")
    assert col.stop() == 0
    assert col.result()["counters"]["dropped_timeout"] == 1


def test_out_of_descriptors_the_collector_waits_instead_of_spinning(tmp_path, pcapgen):
    """With a small descriptor limit and more connections than it allows,
    accept() fails with EMFILE. The collector used to retry at once, forever
    (100% CPU, a log line each time); now it pauses, counts each failure, and
    serves again when descriptors free up."""
    pcap = pcapgen(packets=500, nanosecond=True)

    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    col = Collector(tmp_path / "out", preexec_fn=few_fds,
                    args=["--max-pending", "1000", "--max-pending-per-source", "1000"])
    socks = []
    for _ in range(80):
        s = socket.socket()
        s.settimeout(5)
        s.connect(("127.0.0.1", col.port))  # the kernel completes it in the backlog
        socks.append(s)
    assert col.wait_for("accept: Too many open files", timeout=30), col.log()
    time.sleep(3.0)  # the backlog stays full all along
    for s in socks:
        s.close()
    p, _ = send(pcap, col.port, stream_id=3)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    # A spinning accept loop fails hundreds of thousands of times in 3 s; a
    # pausing one about 30 times.
    failures = col.result()["counters"]["listener_errors"]
    assert 0 < failures < 300, failures
    assert col.log().count("accept: Too many open files") <= 2, "the log is rate-limited"
    assert_same_packets(read_stream(tmp_path / "out", 3), expected_packets(pcap))
