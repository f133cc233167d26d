"""Attacks on the collector's HTTP listener (--metrics) while an honest
sender streams: slow clients that never finish their headers (slowloris),
more of them than there are worker threads, requests far over the size
bound, and one request per defence of the listener (the query string's
bound, headers, methods, paths, encodings, control characters, tokens,
pipelining). The stream is written exactly, the listener serves an honest
request once the attack ends, and the attack shows in named counters."""
import itertools
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import collector_helpers
from collector_helpers import (Collector, assert_same_packets, expected_packets, free_port,
                               metric_samples, read_stream, start_send, write_key)
from conftest import BUILD


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


# ---- one attack per defence, against one real collector ---------------------------------

TOKEN = "Zq3Vt8Lk2Wn5Xb7Yc9Md4Pf6Rg1Sh0Tj"
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
_streams = itertools.count(10)


def exchange(port, request, timeout=30):
    """Sends `request` as it is, reads until the listener closes: (status
    line, headers and body as bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            part = s.recv(65536)
            if not part:
                break
            data += part
    return data


def counters(port):
    """The listener's counters, read to the close of the connection: every
    request before it is counted (a count moves before the close)."""
    r = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    return metric_samples(r.split(b"\r\n\r\n", 1)[1].decode())


def get(target, headers=""):
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()


# (what, request, status, counter that moves by one, reason in the body)
FILTER_OVER_BOUND = "host+10.0.0.1+or+" * 600 + "tcp"  # 10 KiB of query string
DEFENCES = [
    ("query string over 8 KiB", get(f"/query?filter={FILTER_OVER_BOUND}", AUTH), (400, 413),
     "bad_requests", "at most 8192 bytes, the query string included"),
    ("32 headers or more", get("/query", AUTH + "".join(f"X-{i}: y\r\n" for i in range(40))),
     (431,), "bad_requests", "more than 31 headers"),
    ("a method other than GET",
     f"POST /query HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 4\r\n\r\nabcd".encode(),
     (405,), "bad_requests", "only GET"),
    ("a path it does not serve", get("/../../etc/passwd", AUTH), (404,), "bad_requests",
     "no such path: this listener serves /metrics, /query"),
    ("a broken percent-encoding", get("/query?filter=tcp%2", AUTH), (400,), "bad_requests",
     "the query string is not URL-encoded"),
    ("a line break to forge a log line",
     get("/query?filter=tcp%0Aquery+from+10.9.9.9%3A1%3A+every+packet", AUTH), (400,),
     "bad_requests", "the query string holds a control character"),
    ("a NUL to cut the filter libpcap reads", get("/query?filter=tcp%00or+udp", AUTH), (400,),
     "bad_requests", "the query string holds a control character"),
    ("the filter given twice", get("/query?filter=tcp&filter=udp", AUTH), (400,),
     "bad_requests", "filter given twice"),
    ("no token", get("/query?filter=tcp"), (401,), "unauthorized", "a bearer token is required"),
    ("a token wrong in its last character", get("/query", AUTH.replace("Tj\r", "TX\r")), (401,),
     "unauthorized", "a bearer token is required"),
    ("the token with a byte more", get("/query", AUTH.replace("Tj\r", "Tjj\r")), (401,),
     "unauthorized", None),
    ("a token of 4 KiB", get("/query", f"Authorization: Bearer {'A' * 4096}\r\n"), (401,),
     "unauthorized", None),
    ("the token in Basic authentication",
     get("/query", f"Authorization: Basic {TOKEN}\r\n"), (401,), "unauthorized", None),
]


@pytest.fixture(scope="module")
def listener(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-defences")
    pcap = tmp / "in.pcap"
    subprocess.run([str(BUILD / "tools" / "sluice-pcapgen"), "--out", str(pcap), "--packets",
                    "3000", "--nanosecond", "--seed", "9"], check=True)
    out = tmp / "out"
    mport = free_port()
    col = Collector(out, args=["--metrics", f"127.0.0.1:{mport}", "--http-token-file",
                               write_key(tmp / "token", TOKEN), "--http-max-queries", "2"])
    # Module-scoped: not among the collectors each test's teardown kills.
    collector_helpers._running.remove(col)
    try:
        yield col, mport, out, pcap
    finally:
        col.kill()


@pytest.mark.parametrize("what,request_bytes,statuses,counter,reason", DEFENCES,
                         ids=[d[0] for d in DEFENCES])
def test_each_defence_refuses_and_counts(listener, what, request_bytes, statuses, counter,
                                         reason):
    col, mport, out, pcap = listener
    stream = next(_streams)
    before = counters(mport)
    sender, _ = start_send(pcap, col.port, stream_id=stream, rate=3000)
    try:
        answer = exchange(mport, request_bytes)
    finally:
        _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    status = int(answer[9:12])
    assert status in statuses, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    if reason:
        text = body.decode()
        assert reason in text, text
        assert text.count("\n") == 1, f"one line: {text!r}"
    if status == 401:
        assert b"WWW-Authenticate: Bearer" in head
    after = counters(mport)
    name = f"sluice_collector_http_{counter}_total"
    assert after[name] == before[name] + 1, (before[name], after[name])
    # Nothing ran, nothing else moved.
    for other in ("queries", "queries_failed", "query_packets"):
        n = f"sluice_collector_http_{other}_total"
        assert after[n] == before[n], other
    assert after["sluice_collector_http_incomplete_total"] == \
        before["sluice_collector_http_incomplete_total"]
    assert "query from" not in col.log()
    assert col.proc.poll() is None, col.log()
    assert_same_packets(read_stream(out, stream, writing=True), expected_packets(pcap))


def test_one_request_per_connection(listener):
    """Requests pipelined on one connection: the first is answered, then
    the connection is closed; the rest are never read."""
    _, mport, _, _ = listener
    before = counters(mport)
    answer = exchange(mport, get("/metrics") * 3 + get("/query?filter=tcp"))
    assert answer.count(b"HTTP/1.1 ") == 1, answer[:300]
    assert answer.startswith(b"HTTP/1.1 200")
    after = counters(mport)
    # The first scrape (before) and the one answered.
    assert after["sluice_collector_http_requests_total"] == \
        before["sluice_collector_http_requests_total"] + 2
    assert after["sluice_collector_http_unauthorized_total"] == \
        before["sluice_collector_http_unauthorized_total"]


def test_after_the_attacks_an_honest_query_is_served(listener):
    col, mport, _, _ = listener
    answer = exchange(mport, get("/query?filter=tcp&stream=10", AUTH))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert col.proc.poll() is None
