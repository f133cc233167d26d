"""TLS 1.3 between sluice-send and sluice-collector: packets exact through an
encrypted stream, and each refusal (no client certificate, a sender without
TLS, a collector without TLS, a wrong name, unusable files) with its message
and its counter. Certificates are made here with the openssl command.

Each run says which TLS mode it got (kernel TLS or user space): both modes
run, and where the kernel has no kernel TLS the "kernel" run checks that it
fell back to user space and counted so."""
import socket
import subprocess

import pytest

from collector_helpers import (COLLECTOR, Collector, assert_same_packets, check_with_wireshark,
                               expected_packets, free_port, metric_samples, promtool_check,
                               read_stream, scrape, send)
from tls_certs import make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """ca.pem; server.pem/key (collector.test, 127.0.0.1); client.pem/key;
    other-ca.pem with other-client.pem/key."""
    return make_certs(tmp_path_factory.mktemp("tls"))


def kernel_has_tls():
    with socket.socket() as l, socket.socket() as c:
        l.bind(("127.0.0.1", 0))
        l.listen(1)
        c.connect(l.getsockname())
        try:
            c.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP
            return True
        except OSError:
            return False


def tls_collector(out, certs, client_certs=True, args=()):
    a = ["--tls-cert", certs / "server.pem", "--tls-key", certs / "server.key", *args]
    if client_certs:
        a += ["--tls-ca", certs / "ca.pem"]
    return Collector(out, args=a)


@pytest.mark.parametrize("mode", ["kernel", "user"])
def test_tls_end_to_end_exact(tmp_path, pcapgen, certs, mode, monkeypatch):
    # SLUICE_KTLS=0 keeps both ends in user space; without it each end uses
    # kernel TLS where the kernel has it.
    if mode == "user":
        monkeypatch.setenv("SLUICE_KTLS", "0")
    else:
        monkeypatch.delenv("SLUICE_KTLS", raising=False)
    pcap = pcapgen(packets=8000, nanosecond=True, jumbo_percent=2, truncate_percent=5, seed=21)
    out = tmp_path / "out"
    col = tls_collector(out, certs)
    assert "TLS with client certificates" in col.log()
    p, rep = send(pcap, col.port, stream_id=4, codec="lz4", queues=2, frame_size=65536,
                  tls_ca=certs / "ca.pem", tls_cert=certs / "client.pem",
                  tls_key=certs / "client.key", tls_server_name="collector.test")
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    want = expected_packets(pcap, queues=2)
    assert_same_packets(read_stream(out, 4), want)
    check_with_wireshark(out, 4, want, tmp_path)
    summary = col.result()
    tls = summary["tls"]
    assert tls["tls_handshakes"] == rep["sender"]["connects"] == 1
    assert summary["counters"]["refused_tls"] == 0
    kernel = mode == "kernel" and kernel_has_tls()
    print(f"TLS mode: {'kernel TLS' if kernel else 'user space'} "
          f"(kernel TLS {'offered' if kernel_has_tls() else 'not offered by this kernel'})")
    if kernel:
        assert tls["tls_kernel_send"] == 1
    else:
        assert tls["tls_kernel_send"] == tls["tls_kernel_recv"] == 0
        assert tls["tls_user_space"] == 1


def test_sender_without_client_certificate_is_refused_and_counted(tmp_path, pcapgen, certs):
    pcap = pcapgen(packets=100, seed=22)
    col = tls_collector(tmp_path / "out", certs)
    p, rep = send(pcap, col.port, tls_ca=certs / "ca.pem", give_up_ms=1500, timeout=60)
    assert p.returncode == 1
    assert "the collector requires a client certificate (it runs with --tls-ca): set --tls-cert " \
           "and --tls-key" in p.stderr
    p, rep = send(pcap, col.port, tls_ca=certs / "ca.pem", tls_cert=certs / "other-client.pem",
                  tls_key=certs / "other-client.key", give_up_ms=1500, timeout=60)
    assert p.returncode == 1
    assert "refused this sender's certificate (--tls-cert)" in p.stderr
    assert col.stop() == 0
    assert col.result()["counters"]["refused_tls"] >= 2
    assert "the sender presented no certificate and --tls-ca requires one" in col.log()
    assert "the sender's certificate is not signed by the CA in --tls-ca" in col.log()


def test_tls_counters_are_prometheus_metrics(tmp_path, pcapgen, certs):
    """With --metrics, the summary's tls counters are metrics too, with
    their descriptions, and promtool accepts them."""
    pcap = pcapgen(packets=200, seed=26)
    mport = free_port()
    col = tls_collector(tmp_path / "out", certs, args=["--metrics", f"127.0.0.1:{mport}"])
    p, _ = send(pcap, col.port, stream_id=1, tls_ca=certs / "ca.pem",
                tls_cert=certs / "client.pem", tls_key=certs / "client.key",
                tls_server_name="collector.test")
    assert p.returncode == 0, p.stderr
    p, _ = send(pcap, col.port, stream_id=2, tls_ca=certs / "ca.pem", give_up_ms=1500,
                timeout=60)
    assert p.returncode == 1  # no client certificate
    text = scrape(mport)
    promtool_check(text)
    m = metric_samples(text)
    assert m["sluice_collector_tls_handshakes_total"] == 1
    assert m["sluice_collector_tls_failures_total"] >= 1
    assert m["sluice_collector_tls_user_space_total"] + \
        m["sluice_collector_tls_kernel_recv_total"] >= 1
    assert "# HELP sluice_collector_tls_failures_total TLS handshakes or TLS connections that " \
           "failed" in text
    assert "# TYPE sluice_collector_tls_failures_total counter" in text
    assert col.stop() == 0
    tls = col.result()["tls"]
    assert tls["tls_handshakes"] == 1
    assert tls["tls_failures"] >= m["sluice_collector_tls_failures_total"]


def test_without_tls_no_tls_metrics(tmp_path):
    mport = free_port()
    col = Collector(tmp_path / "out", args=["--metrics", f"127.0.0.1:{mport}"])
    text = scrape(mport)
    assert "sluice_collector_handshakes_total 0" in text
    assert "sluice_collector_tls_" not in text
    assert col.stop() == 0


def test_plaintext_sender_to_tls_collector(tmp_path, pcapgen, certs):
    pcap = pcapgen(packets=100, seed=23)
    col = tls_collector(tmp_path / "out", certs, client_certs=False)
    p, _ = send(pcap, col.port, give_up_ms=2500, timeout=60)
    assert p.returncode == 1
    assert "this collector requires TLS (--tls-cert): give the sender egress.tls_ca " \
           "(sluice-send --tls-ca)" in p.stderr
    assert col.stop() == 0
    assert col.result()["counters"]["refused_tls"] >= 1


def test_tls_sender_to_plaintext_collector(tmp_path, pcapgen, certs):
    pcap = pcapgen(packets=100, seed=24)
    col = Collector(tmp_path / "out")
    p, _ = send(pcap, col.port, tls_ca=certs / "ca.pem", give_up_ms=1500, timeout=60)
    assert p.returncode == 1
    assert "the collector answered without TLS: start sluice-collector with --tls-cert and " \
           "--tls-key, or remove --tls-ca to send without TLS" in p.stderr
    assert col.stop() == 0
    assert col.result()["counters"]["refused_tls"] >= 1
    assert "the sender speaks TLS and this collector does not" in col.log()


def test_wrong_server_name_and_untrusted_collector(tmp_path, pcapgen, certs):
    pcap = pcapgen(packets=100, seed=25)
    col = tls_collector(tmp_path / "out", certs, client_certs=False)
    p, _ = send(pcap, col.port, tls_ca=certs / "ca.pem", tls_server_name="wrong.test",
                give_up_ms=1500, timeout=60)
    assert p.returncode == 1
    assert "the collector's certificate is not for the name this sender checks (it names " \
           "DNS:collector.test, IP:127.0.0.1): set --tls-server-name" in p.stderr
    p, _ = send(pcap, col.port, tls_ca=certs / "other-ca.pem", give_up_ms=1500, timeout=60)
    assert p.returncode == 1
    assert "not signed by the CA in --tls-ca" in p.stderr
    assert col.stop() == 0
    assert col.result()["counters"]["refused_tls"] >= 2


def test_unusable_files_exit_2_naming_the_file(tmp_path, certs):
    def run(*args):
        return subprocess.run([str(COLLECTOR), "--out", str(tmp_path / "o"),
                               "--listen", f"tcp://127.0.0.1:{free_port()}", *map(str, args)],
                              capture_output=True, text=True, timeout=30)
    p = run("--tls-cert", certs / "server.pem", "--tls-key", certs / "client.key")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1
    assert f"--tls-key {certs / 'client.key'} does not match the certificate in --tls-cert " \
           f"{certs / 'server.pem'}" in p.stderr
    p = run("--tls-cert", certs / "missing.pem", "--tls-key", certs / "server.key")
    assert p.returncode == 2
    assert f"--tls-cert {certs / 'missing.pem'}: cannot read it" in p.stderr
    # Off loopback, TLS without client certificates still needs a key.
    p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path / "o"), "--listen",
                        "tcp://0.0.0.0:7999", "--tls-cert", str(certs / "server.pem"),
                        "--tls-key", str(certs / "server.key")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert "needs --key-file or --tls-ca" in p.stderr
