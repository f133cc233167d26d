"""The collector's HTTP listener (--metrics): GET /query streams the same
pcapng as sluice-query for the same filter and range, byte for byte, only
to clients that authenticate (a bearer token from a file, or a TLS client
certificate);
bad requests get 400 with the one-line reason; queries beyond
--http-max-queries get 503; the collector keeps receiving while a query
streams. Real collector, real sluice-send streams, real HTTP."""
import http.client
import json
import socket
import ssl
import struct
import subprocess
import time
import urllib.parse

import pytest

import collector_helpers
from collector_helpers import Collector, assert_same_packets, expected_packets, free_port, \
    read_stream, send, write_key
from conftest import BUILD

QUERY = BUILD / "tools" / "sluice-query"
TOKEN = "k8Jd9s7Qx2Lm4Np6Rt8Vw0Yz3Bc5Df7H"


def get(port, path, params=None, token=None, timeout=60):
    """(status, headers dict, body bytes) of one GET."""
    target = path + ("?" + urllib.parse.urlencode(params) if params else "")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("GET", target, headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def without_section_header(pcapng):
    """The blocks after the Section Header Block: the interfaces and packets."""
    assert struct.unpack_from("<I", pcapng, 0)[0] == 0x0A0D0D0A, "not pcapng"
    return pcapng[struct.unpack_from("<I", pcapng, 4)[0]:]


def section_comment(pcapng):
    shb_len = struct.unpack_from("<I", pcapng, 4)[0]
    off = 8 + 16
    while off < shb_len - 4:
        code, ln = struct.unpack_from("<HH", pcapng, off)
        if code == 0:
            break
        if code == 1:
            return pcapng[off + 4:off + 4 + ln].decode()
        off += 4 + ((ln + 3) & ~3)
    return None


def sluice_query(tmp_path, out, *args):
    dest = tmp_path / f"q-{time.monotonic_ns()}.pcapng"
    subprocess.run([str(QUERY), "--dir", str(out), "-w", str(dest)] + list(args), check=True,
                   capture_output=True, timeout=120)
    return dest.read_bytes()


def metrics(port):
    status, _, body = get(port, "/metrics")
    assert status == 200
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A collector with two streams written, serving /metrics and /query."""
    tmp = tmp_path_factory.mktemp("http")
    pcap = tmp / "in.pcap"
    subprocess.run([str(BUILD / "tools" / "sluice-pcapgen"), "--out", str(pcap), "--packets",
                    "6000", "--nanosecond", "--ipv6-percent", "30", "--seed", "7"], check=True)
    token = write_key(tmp / "token", TOKEN)
    out = tmp / "out"
    mport = free_port()
    col = Collector(out, args=["--metrics", f"127.0.0.1:{mport}", "--http-token-file", token,
                               "--http-max-queries", "1", "--http-timeout", "3000",
                               "--rotate-size", "1M"])
    # Module-scoped: not among the collectors each test's teardown kills.
    collector_helpers._running.remove(col)
    try:
        for stream in (1, 2):
            p, _ = send(pcap, col.port, stream_id=stream, queues=2)
            assert p.returncode == 0, p.stderr
        yield col, mport, out, pcap, tmp
    finally:
        col.kill()


@pytest.mark.parametrize("params,args", [
    ({}, []),
    ({"filter": "tcp port 443"}, ["tcp port 443"]),
    ({"filter": "ip6 and udp", "stream": "2"}, ["--stream", "2", "ip6 and udp"]),
    ({"filter": "host 10.0.0.1 or net 10.0.0.0/8", "stream": "1"},
     ["--stream", "1", "host 10.0.0.1 or net 10.0.0.0/8"]),
])
def test_query_streams_what_sluice_query_writes(tmp_path, served, params, args):
    col, mport, out, _, _ = served
    status, headers, body = get(mport, "/query", params, token=TOKEN)
    assert status == 200, body
    assert headers["Content-Type"] == "application/x-pcapng"
    assert headers.get("Transfer-Encoding") == "chunked"
    want = sluice_query(tmp_path, out, *args)
    # Byte for byte, the section header included.
    assert body == want
    assert len(without_section_header(body)) > 100
    comment = section_comment(body)
    assert comment.startswith("sluice-query"), comment
    if "filter" in params:
        assert f"'{params['filter']}'" in comment


def test_inner_matches_the_innermost_packet_as_sluice_query_inner_does(tmp_path, pcapgen):
    """Every packet in a tunnel: inner=1 finds the HTTPS packets by their inner
    port, byte for byte what sluice-query --inner writes; without it, by the
    outer headers alone, fewer packets match."""
    pcap = pcapgen(packets=3000, tunnel="mix", seed=52)
    token = write_key(tmp_path / "token", TOKEN)
    mport = free_port()
    out = tmp_path / "out"
    col = Collector(out, args=["--metrics", f"127.0.0.1:{mport}", "--http-token-file", token])
    p, _ = send(pcap, col.port, stream_id=1)
    assert p.returncode == 0, p.stderr
    params = {"filter": "tcp port 443", "inner": "1"}
    status, _, body = get(mport, "/query", params, token=TOKEN)
    assert status == 200, body
    assert body == sluice_query(tmp_path, out, "--inner", "tcp port 443")
    assert len(without_section_header(body)) > 1000
    assert section_comment(body) == "sluice-query --inner 'tcp port 443'"
    status, _, outer = get(mport, "/query", {**params, "inner": "0"}, token=TOKEN)
    assert status == 200, outer
    assert outer == sluice_query(tmp_path, out, "tcp port 443")
    assert len(without_section_header(outer)) < len(without_section_header(body))
    assert col.stop() == 0, col.log()


def test_time_ranges_select_as_sluice_query_does(tmp_path, served):
    col, mport, out, pcap, _ = served
    # Times from the capture itself: the middle third of stream 1's packets.
    stamps = sorted(p["ts_ns"] for p in read_stream(out, 1))
    lo, hi = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    frm = f"{lo // 10**9}.{lo % 10**9:09d}"
    to = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(hi // 10**9)) + f".{hi % 10**9:09d}Z"
    status, _, body = get(mport, "/query", {"from": frm, "to": to, "filter": "tcp"}, token=TOKEN)
    assert status == 200, body
    want = sluice_query(tmp_path, out, "--from", frm, "--to", to, "tcp")
    assert body == want
    assert len(without_section_header(want)) > 0


def test_without_the_token_401_and_counted(served):
    col, mport, _, _, _ = served
    before = metrics(mport)["sluice_collector_http_unauthorized_total"]
    status, headers, body = get(mport, "/query", {"filter": "tcp"})
    assert status == 401
    assert headers.get("WWW-Authenticate") == "Bearer"
    status, _, _ = get(mport, "/query", {"filter": "tcp"}, token="not-the-token-not-the-token")
    assert status == 401
    assert metrics(mport)["sluice_collector_http_unauthorized_total"] == before + 2


@pytest.mark.parametrize("params,reason", [
    ({"filter": "host and"}, "bad filter 'host and': "),
    ({"from": "yesterday"}, "from 'yesterday' is not a time: give RFC 3339"),
    ({"from": "2024-05-14T14:05:00Z", "to": "2024-05-14T14:02:00Z"}, "is not before to"),
    ({"stream": "x"}, "stream 'x': give a number"),
    ({"filtre": "tcp"}, "unknown parameter 'filtre'"),
    ({"inner": "yes"}, "inner 'yes': give 1 or 0"),
])
def test_a_bad_filter_or_time_is_400_with_the_reason(served, params, reason):
    _, mport, _, _, _ = served
    status, _, body = get(mport, "/query", params, token=TOKEN)
    assert status == 400
    text = body.decode()
    assert reason in text, text
    assert text.count("\n") == 1, "one line"


def test_metrics_name_streams_and_connection_counters(served):
    _, mport, _, _, _ = served
    # The streams' totals are republished by the event loop every 100 ms.
    deadline = time.time() + 60
    while 'sluice_collector_stream_packets_written_total{stream="2"}' not in metrics(mport):
        assert time.time() < deadline, "the streams never showed"
        time.sleep(0.05)
    m = metrics(mport)
    assert m['sluice_collector_stream_packets_written_total{stream="1"}'] == 6000
    assert m['sluice_collector_stream_packets_written_total{stream="2"}'] == 6000
    assert m['sluice_collector_stream_packets_lost_total{stream="1"}'] == 0
    assert m["sluice_collector_handshakes_total"] == 2
    assert m["sluice_collector_http_queries_running"] == 0
    # The file counters (retention, --on-rotate) and the reload counters too.
    assert "sluice_collector_files_finished_total" in m
    assert m["sluice_collector_files_deleted_max_disk_total"] == 0
    assert m["sluice_collector_on_rotate_failed_total"] == 0
    assert m["sluice_collector_reloads_total"] == 0
    status, headers, body = get(mport, "/metrics")
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert "# HELP sluice_collector_refused_auth_total Connections refused: wrong key" in text
    assert "# TYPE sluice_collector_refused_auth_total counter" in text


def test_beyond_max_queries_503_and_the_collector_keeps_receiving(tmp_path, served):
    """A query whose client does not read holds the only slot
    (--http-max-queries 1): another query gets 503, counted; meanwhile a
    new stream is received and written exactly. When the client is gone
    the slot is free again."""
    col, mport, out, pcap, _ = served
    busy_before = metrics(mport)["sluice_collector_http_queries_busy_total"]
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", mport))
    slow.sendall(f"GET /query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                 .encode())
    assert slow.recv(12).startswith(b"HTTP/1.1 200")
    deadline = time.time() + 60
    while metrics(mport)["sluice_collector_http_queries_running"] != 1:
        assert time.time() < deadline, "the query never showed as running"
        time.sleep(0.05)
    status, headers, body = get(mport, "/query", {"filter": "udp"}, token=TOKEN)
    assert status == 503, body
    assert headers.get("Retry-After") == "5"
    assert metrics(mport)["sluice_collector_http_queries_busy_total"] == busy_before + 1
    # The event loop is not the query's: a new stream goes through meanwhile.
    p, _ = send(pcap, col.port, stream_id=3)
    assert p.returncode == 0, p.stderr
    assert metrics(mport)["sluice_collector_http_queries_running"] == 1
    assert_same_packets(read_stream(out, 3, writing=True), expected_packets(pcap))
    slow.close()
    # The slot comes back once the server's write fails (client gone) or
    # times out (--http-timeout 3000).
    deadline = time.time() + 60
    while metrics(mport)["sluice_collector_http_queries_running"] != 0:
        assert time.time() < deadline, "the slot was never released"
        time.sleep(0.05)
    status, _, _ = get(mport, "/query", {"filter": "udp", "stream": "3"}, token=TOKEN)
    assert status == 200
    m = metrics(mport)
    assert m["sluice_collector_http_queries_failed_total"] >= 1


def test_summary_holds_the_http_counters(tmp_path, pcapgen):
    pcap = pcapgen(packets=200, nanosecond=True)
    token = write_key(tmp_path / "token", TOKEN)
    mport = free_port()
    col = Collector(tmp_path / "out", args=["--metrics", f"127.0.0.1:{mport}",
                                            "--http-token-file", token])
    assert col.wait_for(f"metrics on http://127.0.0.1:{mport}/metrics, queries on "
                        f"http://127.0.0.1:{mport}/query (a bearer token)")
    p, _ = send(pcap, col.port, stream_id=1)
    assert p.returncode == 0
    assert get(mport, "/query", {"filter": "tcp"}, token=TOKEN)[0] == 200
    assert get(mport, "/query")[0] == 401
    assert get(mport, "/nothing")[0] == 404
    assert col.stop() == 0
    h = col.result()["http"]
    assert h["requests"] == 3 and h["unauthorized"] == 1 and h["bad_requests"] == 1, h
    assert h["queries"] == 1 and h["query_packets"] > 0, h
    assert "query from 127.0.0.1:" in col.log()
    assert "  http: requests 3," in col.log()


def test_query_is_off_without_authentication(tmp_path):
    mport = free_port()
    col = Collector(tmp_path / "out", args=["--metrics", f"127.0.0.1:{mport}"])
    assert col.wait_for("(off: no --http-token-file or --http-tls-ca)")
    status, _, body = get(mport, "/query")
    assert status == 403, body
    assert get(mport, "/metrics")[0] == 200
    assert col.stop() == 0


@pytest.mark.parametrize("args,message", [
    (["--http-token-file", "/nonexistent"], "give --metrics ADDR:PORT too"),
    (["--metrics", "127.0.0.1:1", "--http-tls-cert", "c.pem"], "--http-tls-cert and --http-tls-key together"),
    (["--metrics", "nowhere"], "--metrics 'nowhere': give ADDR:PORT"),
    (["--metrics", "127.0.0.1:1", "--http-max-queries", "0"], "--http-max-queries '0'"),
])
def test_bad_http_options_exit_2(tmp_path, args, message):
    p = subprocess.run([str(BUILD / "collector" / "sluice-collector"), "--out",
                        str(tmp_path / "out")] + args, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr


def test_a_token_file_others_can_read_is_refused(tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o644)
    p = subprocess.run([str(BUILD / "collector" / "sluice-collector"), "--out",
                        str(tmp_path / "out"), "--metrics", "127.0.0.1:9", "--http-token-file",
                        str(token)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "token file" in p.stderr and "chmod 600" in p.stderr


# ---- TLS with client certificates -------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext", cwd=d)
    for f in d.glob("*.key"):
        f.chmod(0o600)


def civetweb_loads_openssl():
    """Whether this host's civetweb can serve HTTPS: it loads libssl at run
    time and needs OpenSSL 1.1's SSL_get_peer_certificate, which OpenSSL 3
    dropped (Debian 12's civetweb 1.15 cannot)."""
    import ctypes
    try:
        ssl_lib = ctypes.CDLL("libssl.so")
    except OSError:
        return False
    return hasattr(ssl_lib, "SSL_get_peer_certificate")


def test_https_with_client_certificates(tmp_path, pcapgen):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    out = tmp_path / "out"
    mport = free_port()
    args = ["--metrics", f"127.0.0.1:{mport}", "--http-tls-cert", pki / "server.pem",
            "--http-tls-key", pki / "server.key", "--http-tls-ca", pki / "ca.pem"]
    if not civetweb_loads_openssl():
        # The collector says so and stops, rather than listening without TLS.
        p = subprocess.run([str(BUILD / "collector" / "sluice-collector"), "--out", str(out),
                            "--listen", f"tcp://127.0.0.1:{free_port()}"] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, p.stderr
        assert "HTTPS is not available" in p.stderr and "--http-token-file" in p.stderr
        return
    pcap = pcapgen(packets=300, nanosecond=True)
    col = Collector(out, args=args)
    assert col.wait_for(f"queries on https://127.0.0.1:{mport}/query (a client certificate)")
    p, _ = send(pcap, col.port, stream_id=1)
    assert p.returncode == 0

    def https_get(path, cert=True):
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        if cert:
            ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", mport, context=ctx, timeout=30)
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()

    status, body = https_get("/query?filter=tcp")
    assert status == 200
    want = sluice_query(tmp_path, out, "tcp")
    assert body == want
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
        https_get("/metrics", cert=False)
    assert col.stop() == 0
    h = col.result()["http"]
    assert h["queries"] == 1 and h["incomplete"] >= 1, h


def test_tls_files_are_checked_at_start(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    p = subprocess.run([str(BUILD / "collector" / "sluice-collector"), "--out",
                        str(tmp_path / "out"), "--listen", f"tcp://127.0.0.1:{free_port()}",
                        "--metrics", f"127.0.0.1:{free_port()}",
                        "--http-tls-cert", str(pki / "server.pem"),
                        "--http-tls-key", str(pki / "client.key")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert f"cannot use the TLS key {pki / 'client.key'}" in p.stderr
    assert "key values mismatch" in p.stderr
