"""sluice-query across collectors (--url): the answers of several
collectors' GET /query, and of local directories, merged in time order are
byte for byte what one query over all their directories writes; a collector
that refuses, cannot be reached, or answers with damaged pcapng is an error
naming it, never a hang or a silently shorter capture. Real collectors,
real sluice-send streams, real HTTP (and HTTPS with a client certificate)."""
import socket
import struct
import subprocess
import threading
import time

import pytest

import collector_helpers
from collector_helpers import Collector, free_port, read_stream, send, write_key
from conftest import BUILD
from test_http_query import civetweb_loads_openssl, make_pki

QUERY = BUILD / "tools" / "sluice-query"
TOKEN = "Qm3Xs9Lw2Vt7Kp4Nz8Rb6Hd1Jf5Gc0Ya"


def query(*args, timeout=120):
    return subprocess.run([str(QUERY)] + [str(a) for a in args], capture_output=True,
                          timeout=timeout)


def pcapng_of(tmp_path, *args):
    dest = tmp_path / f"q-{time.monotonic_ns()}.pcapng"
    p = query("-w", dest, *args)
    assert p.returncode == 0, p.stderr.decode()
    return dest.read_bytes()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two collectors serving GET /query: A holds streams 1 and 2, B stream 3
    (another capture, so B's packets interleave with A's in time)."""
    tmp = tmp_path_factory.mktemp("across")
    pcapgen = BUILD / "tools" / "sluice-pcapgen"
    pcaps = []
    for seed in (7, 8):
        pcap = tmp / f"in-{seed}.pcap"
        subprocess.run([str(pcapgen), "--out", str(pcap), "--packets", "4000", "--nanosecond",
                        "--ipv6-percent", "30", "--seed", str(seed)], check=True)
        pcaps.append(pcap)
    token = write_key(tmp / "token", TOKEN)
    cols = []
    try:
        for name, streams, pcap in (("a", (1, 2), pcaps[0]), ("b", (3,), pcaps[1])):
            mport = free_port()
            col = Collector(tmp / name, args=["--metrics", f"127.0.0.1:{mport}",
                                              "--http-token-file", token, "--rotate-size", "256K"])
            collector_helpers._running.remove(col)  # module-scoped
            cols.append((col, mport))
            for stream in streams:
                p, _ = send(pcap, col.port, stream_id=stream, queues=2)
                assert p.returncode == 0, p.stderr
        yield {"dirs": [tmp / "a", tmp / "b"], "token": token,
               "urls": [f"http://127.0.0.1:{m}" for _, m in cols], "cols": cols}
    finally:
        for col, _ in cols:
            col.kill()


@pytest.mark.parametrize("args", [
    [],
    ["tcp port 443"],
    ["ip6 and udp"],
    ["--stream", "3", "tcp"],
    ["--stream", "2", "--stream", "3"],
])
def test_answers_of_two_collectors_merge_as_one_query_over_their_directories(
        tmp_path, cluster, args):
    a, b = cluster["urls"]
    want = pcapng_of(tmp_path, "--dir", cluster["dirs"][0], "--dir", cluster["dirs"][1], *args)
    got = pcapng_of(tmp_path, "--url", a, "--url", b, "--token-file", cluster["token"], *args)
    assert got == want
    assert len(want) > 1000, "the query matched nothing: it proves nothing"


def test_a_directory_and_a_collector_merge_as_well(tmp_path, cluster):
    want = pcapng_of(tmp_path, "--dir", cluster["dirs"][0], "--dir", cluster["dirs"][1], "udp")
    got = pcapng_of(tmp_path, "--dir", cluster["dirs"][0], "--url", cluster["urls"][1] + "/query",
                    "--token-file", cluster["token"], "udp")
    assert got == want


def test_time_range_reaches_the_collectors(tmp_path, cluster):
    stamps = sorted(p["ts_ns"] for p in read_stream(cluster["dirs"][1], 3))
    lo, hi = stamps[len(stamps) // 4], stamps[len(stamps) // 2]
    frm, to = f"{lo // 10**9}.{lo % 10**9:09d}", f"{hi // 10**9}.{hi % 10**9:09d}"
    rng = ["--from", frm, "--to", to]
    want = pcapng_of(tmp_path, "--dir", cluster["dirs"][0], "--dir", cluster["dirs"][1], *rng)
    got = pcapng_of(tmp_path, *rng, "--url", cluster["urls"][0], "--url", cluster["urls"][1],
                    "--token-file", cluster["token"])
    assert got == want
    everything = pcapng_of(tmp_path, "--dir", cluster["dirs"][0], "--dir", cluster["dirs"][1])
    assert 1000 < len(want) < len(everything)


def test_flows_across_collectors(cluster):
    local = query("--flows", "--dir", cluster["dirs"][0], "--dir", cluster["dirs"][1], "tcp")
    remote = query("--flows", "--url", cluster["urls"][0], "--url", cluster["urls"][1],
                   "--token-file", cluster["token"], "tcp")
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr.decode()
    assert remote.stdout == local.stdout
    assert remote.stdout.count(b"\n") > 10


def test_a_refused_query_names_the_collector_and_its_reason(tmp_path, cluster):
    wrong = write_key(tmp_path / "wrong", "this-is-not-the-token-at-all-0123")
    a = cluster["urls"][0]
    for extra in (["--token-file", wrong], []):
        p = query("-w", tmp_path / "x.pcapng", "--url", a, *extra, "tcp")
        err = p.stderr.decode()
        assert p.returncode == 1, err
        assert f"sluice-query: {a}: HTTP 401" in err, err


def test_an_unreachable_collector_is_an_error_not_a_hang(tmp_path, cluster):
    dead = f"http://127.0.0.1:{free_port()}"
    p = query("-w", tmp_path / "x.pcapng", "--url", cluster["urls"][0], "--url", dead,
              "--token-file", cluster["token"])
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f"sluice-query: {dead}: " in err and "onnect" in err, err


@pytest.mark.parametrize("argv,reason", [
    (["--url", "ftp://127.0.0.1:1"], "give http://HOST:PORT or https://HOST:PORT"),
    (["--url", "http://127.0.0.1:1", "--cert", "c.pem"], "--cert and --key go together"),
    (["--dir", ".", "--token-file", "t"], "--token-file, --ca and --cert go with --url"),
])
def test_bad_url_options_are_usage_errors(argv, reason):
    p = query(*argv)
    assert p.returncode == 2
    assert reason in p.stderr.decode()


def test_a_token_file_that_is_missing_empty_or_too_long(tmp_path):
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "long").write_text("t" * 5000 + "\n")
    for f, reason in ((tmp_path / "none", "cannot read --token-file"),
                      (tmp_path / "empty", "is empty"),
                      (tmp_path / "long", "longer than 4096 bytes")):
        p = query("-w", tmp_path / "x.pcapng", "--url", "http://127.0.0.1:1", "--token-file", f)
        assert p.returncode == 1
        assert reason in p.stderr.decode()


# ---- a hostile server: what it answers is checked, bounded and named ----------------

def shb():
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    return struct.pack("<II", 0x0A0D0D0A, 12 + len(body)) + body + struct.pack("<I", 12 +
                                                                                len(body))


def idb():
    return struct.pack("<IIHHII", 1, 20, 1, 0, 65535, 20)


def epb(iface, data=b"\x00" * 60):
    pad = data + b"\x00" * (-len(data) % 4)
    n = 32 + len(pad)
    return struct.pack("<IIIIIII", 6, n, iface, 0, 1000, len(data), len(data)) + pad + \
        struct.pack("<I", n)


class RawServer:
    """Answers every connection with `response` (raw bytes), then closes."""

    def __init__(self, response):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.response = response
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                try:
                    c.recv(65536)
                    c.sendall(self.response)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def ok_200(body, chunked_unterminated=False):
    if chunked_unterminated:  # one chunk, then the connection closes: cut short
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-pcapng\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n")
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-pcapng\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


@pytest.mark.parametrize("response,reason", [
    (ok_200(b"hello, this is not pcapng at all"), "not pcapng"),
    (ok_200(b""), "empty answer"),
    (ok_200(shb() + struct.pack("<II", 6, 0xFFFFFFF0) + b"\x00" * 64), "a block of 4294967280"),
    (ok_200(shb() + epb(5)), "a packet on interface 5, which the answer has not described"),
    (ok_200(shb() + idb() + epb(0)[:30]), "cut short inside a block"),
    (ok_200(shb() + idb() + epb(0), chunked_unterminated=True), "transfer closed"),
    (ok_200(shb() + shb()), "a second section"),
    # An id: pytest puts the test id in the environment (PYTEST_CURRENT_TEST).
    pytest.param(ok_200(shb() + idb() * 65537), "more than 65536 interfaces",
                 id="too-many-interfaces"),
    (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 21\r\n\r\nthe disk is on fire\r\n",
     "HTTP 500: the disk is on fire"),
])
def test_a_damaged_answer_is_an_error_naming_the_collector(tmp_path, response, reason):
    srv = RawServer(response)
    try:
        p = query("-w", tmp_path / "x.pcapng", "--url", srv.url, timeout=60)
    finally:
        srv.close()
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f"sluice-query: {srv.url}" in err and reason in err, err


class HttpsAnswer:
    """An HTTPS server that requires a client certificate signed by the CA
    and answers GET /query with `body`, recording the request lines."""

    def __init__(self, pki, body):
        import http.server
        import ssl
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-pcapng")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
        ctx.load_verify_locations(str(pki / "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_https_with_a_client_certificate(tmp_path, cluster):
    """--ca, --cert and --key: the server's certificate is checked against
    the CA, the client's is presented. (The collector's own HTTPS needs a
    civetweb that loads OpenSSL 3, which Debian 12's does not: this server
    stands in for it and answers what the collector would.)"""
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    want = pcapng_of(tmp_path, "--dir", cluster["dirs"][1], "tcp")
    srv = HttpsAnswer(pki, want)
    try:
        got = pcapng_of(tmp_path, "--url", srv.url, "--ca", pki / "ca.pem",
                        "--cert", pki / "client.pem", "--key", pki / "client.key", "tcp")
        assert got == want
        assert srv.requests == ["/query?filter=tcp"]
        # Without a client certificate the server refuses the handshake.
        p = query("-w", tmp_path / "x.pcapng", "--url", srv.url, "--ca", pki / "ca.pem", "tcp")
        assert p.returncode == 1
        assert f"sluice-query: {srv.url}: " in p.stderr.decode()
        # Without the CA, the server's certificate is not trusted.
        p = query("-w", tmp_path / "x.pcapng", "--url", srv.url, "--cert", pki / "client.pem",
                  "--key", pki / "client.key", "tcp")
        assert p.returncode == 1
        assert "certificate" in p.stderr.decode(), p.stderr.decode()
    finally:
        srv.close()
