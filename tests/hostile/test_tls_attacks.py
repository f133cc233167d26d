"""Attacks on a collector that requires TLS with client certificates
(--tls-cert, --tls-key, --tls-ca), each while an honest sender streams
through TLS with its certificate: a peer speaking sluice without TLS, one
that connects and says nothing, one that is neither TLS nor sluice, one
with a certificate of another CA, one with none. Each is refused in words
and counted; the honest stream is written exactly and never reconnects."""
import socket
import ssl
import struct

import pytest

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               start_send)
from tls_certs import make_certs
from transport_by_hand import REJECT, hello, parse_reject, recv_exact


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("tls"))


def plaintext_reject(s, timeout=10):
    """The plaintext REJECT the collector sends before any TLS: (reason, text)."""
    head = recv_exact(s, 8, timeout)
    magic, _, mtype, blen = struct.unpack("<4sBBH", head)
    assert magic == b"SLCT" and mtype == REJECT, head
    body = recv_exact(s, blen + 4, timeout)[:blen]
    s.close()
    return parse_reject(body)


def tls_client(port, certs, cert=None):
    """A TLS 1.3 client (Python's ssl); with `cert`, presenting NAME.pem/key.
    Returns the error the collector's answer raised, or None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(certs / "ca.pem")
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(certs / f"{cert}.pem", certs / f"{cert}.key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname="collector.test") as s:
            # TLS 1.3: the client's handshake ends before the collector has
            # checked its certificate; the verdict comes with the next read.
            data = s.recv(4096)
            return None if data else "closed"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return str(e)


def test_tls_attacks_are_refused_counted_and_the_honest_stream_is_exact(tmp_path, pcapgen,
                                                                       certs):
    pcap = pcapgen(packets=6000, nanosecond=True, seed=31)
    out = tmp_path / "out"
    col = Collector(out, args=["--tls-cert", certs / "server.pem", "--tls-key",
                               certs / "server.key", "--tls-ca", certs / "ca.pem"])
    sender, report = start_send(pcap, col.port, stream_id=1, rate=3000,
                                tls_ca=certs / "ca.pem", tls_cert=certs / "client.pem",
                                tls_key=certs / "client.key", tls_server_name="collector.test")
    assert col.wait_for("stream 1 connected", timeout=30), col.log()

    # A sender without TLS: its HELLO's first byte says so at once.
    s = socket.create_connection(("127.0.0.1", col.port), timeout=10)
    s.sendall(hello(b"\0" * 32)[0])
    reason, text = plaintext_reject(s)
    assert reason == 5 and "speaks sluice without TLS" in text, (reason, text)

    # One that says nothing: told after the grace (one second), in plaintext.
    s = socket.create_connection(("127.0.0.1", col.port), timeout=10)
    reason, text = plaintext_reject(s)
    assert reason == 5 and "no TLS handshake within 1000 ms" in text, (reason, text)

    # Neither TLS nor sluice (an HTTP request).
    s = socket.create_connection(("127.0.0.1", col.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: collector\r\n\r\n")
    reason, text = plaintext_reject(s)
    assert reason == 5 and "not a TLS handshake" in text, (reason, text)

    # A certificate another CA signed, and no certificate at all.
    err = tls_client(col.port, certs, cert="other-client")
    assert err is not None, "a certificate of another CA was accepted"
    err = tls_client(col.port, certs)
    assert err is not None and "certificate required" in err, err
    assert col.wait_for("the sender presented no certificate"), col.log()

    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    assert col.stop() == 0, col.log()
    result = col.result()
    k = result["counters"]
    assert k["refused_tls"] == 4, k  # without TLS, silent, another CA, no certificate
    assert k["dropped_protocol"] == 1, k  # the HTTP request
    assert k["handshakes"] == 1, "the honest sender never had to reconnect"
    assert result["tls"]["tls_failures"] == 4, result["tls"]
    log = col.log()
    assert "the sender's certificate is not signed by the CA in --tls-ca" in log
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
