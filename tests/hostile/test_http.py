"""Attacks on the collector's HTTP listener (--metrics) while an honest
sender streams: slow clients that never finish their headers (slowloris),
more of them than there are worker threads, and requests far over the size
bound. The stream is written exactly, the listener serves an honest scrape
once the attack ends, and the attack shows in named counters."""
import socket
import threading
import time
import urllib.request

from collector_helpers import (Collector, assert_same_packets, expected_packets, free_port,
                               read_stream, start_send)


def slowloris(port, stop, opened, per_round=24):
    """Keeps `per_round` connections each sending a header byte at a time,
    never the blank line that ends a request; reopens what the listener
    closes, until `stop`."""
    socks = []
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
    while not stop.is_set():
        while len(socks) < per_round and not stop.is_set():
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(head)
                socks.append(s)
                opened[0] += 1
            except OSError:
                s.close()
        alive = []
        for s in socks:
            try:
                s.send(b"X-a: b\r\n")
                alive.append(s)
            except OSError:
                s.close()
        socks = alive
        time.sleep(0.1)
    for s in socks:
        s.close()


def oversized(port, stop, sent):
    """Requests with 64 KiB of headers, over and over."""
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    while not stop.is_set():
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            sent[0] += 1
            s.sendall(big)  # the listener answers and closes after 8 KiB
            while s.recv(4096):
                pass
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.02)


def test_slowloris_and_oversized_requests_do_not_stop_a_stream(tmp_path, pcapgen):
    pcap = pcapgen(packets=30000, nanosecond=True)
    out = tmp_path / "out"
    mport = free_port()
    col = Collector(out, args=["--metrics", f"127.0.0.1:{mport}", "--http-timeout", "500",
                               "--http-max-queries", "2"])
    sender, _ = start_send(pcap, col.port, stream_id=4, rate=15000)
    assert col.wait_for("stream 4 connected", timeout=30), col.log()
    stop = threading.Event()
    opened, sent = [0], [0]
    attackers = [threading.Thread(target=slowloris, args=(mport, stop, opened), daemon=True),
                 threading.Thread(target=oversized, args=(mport, stop, sent), daemon=True)]
    for a in attackers:
        a.start()
    try:
        _, err = sender.communicate(timeout=180)
        assert sender.returncode == 0, err
    finally:
        stop.set()
        for a in attackers:
            a.join(timeout=30)
    assert opened[0] > 24, "the slow connections were cut and reopened"
    assert sent[0] > 0
    # With the attack over, an honest scrape is served.
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
                assert r.status == 200
                assert b"sluice_collector_http_incomplete_total" in r.read()
            break
        except OSError:
            assert time.time() < deadline, "the listener never served again"
            time.sleep(0.2)
    assert col.proc.poll() is None, col.log()
    assert col.stop() == 0
    h = col.result()["http"]
    assert h["incomplete"] > 0, h      # the slow ones, cut at --http-timeout
    assert h["bad_requests"] > 0, h    # the oversized ones
    assert col.result()["counters"]["handshakes"] == 1, "the sender never had to reconnect"
    assert_same_packets(read_stream(out, 4), expected_packets(pcap))
