"""Scale-out on NATS JetStream with real servers (docs/scale-out.md): a
3-node nats-server cluster on loopback ports (configurations written here),
sluice on a virtual NIC and sluice-send publishing into it, two collectors of
one group reading out of it. One NATS server and one collector are killed
with SIGKILL mid-stream and restarted; the union of the collectors' files
must then hold exactly the input packets, each once, each file in order, and
sluice-query over both directories returns them all in time order.

Also: an unreachable cluster and a missing nats-server are clear errors, not
hangs; a stream with other settings is refused naming the difference."""
import os
import signal
import struct
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import nats_helpers
from collector_helpers import COLLECTOR, SEND, output_files, read_pcapng
from conftest import BUILD, EAL, Running, read_pcap, write_config
from nats_helpers import Cluster, free_ports

QUERY = BUILD / "tools" / "sluice-query"


class Member:
    """A sluice-collector of a group, reading from the cluster."""

    def __init__(self, out, url, group="g1", lease_ms=2000, extra=()):
        self.out = Path(out)
        self.log_path = self.out.parent / (self.out.name + ".log")
        self.cmd = [str(COLLECTOR), "--source", url, "--group", group, "--out", str(out),
                    "--lease-ms", str(lease_ms), "--stats-interval", "0"] + list(extra)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "a"))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            return self.proc.wait(timeout=60)
        return self.proc.returncode

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture
def members():
    started = []
    yield started
    for m in started:
        m.kill()


def count_packets(dirs, stream_id):
    """Enhanced packet blocks in the stream's files (those being written
    too), tolerating a block being written."""
    n = 0
    for d in dirs:
        for f in output_files(d, stream_id, writing=True):
            raw = f.read_bytes()
            off = 0
            while off + 12 <= len(raw):
                btype, blen = struct.unpack_from("<II", raw, off)
                if blen < 12 or off + blen > len(raw):
                    break
                n += btype == 6
                off += blen
    return n


def key(p):
    return (p["ts_ns"], p["orig_len"], p["data"])


def assert_exactly_once_in_order(dirs, stream_id, want):
    """Every input packet in exactly one file of one directory; within each
    file, packets in input order (a file may hold runs with a gap where
    another member wrote the stream meanwhile)."""
    index = {key(p): i for i, p in enumerate(want)}
    assert len(index) == len(want), "the input must not repeat a packet"
    seen = [0] * len(want)
    for d in dirs:
        for f in output_files(d, stream_id):
            last = -1
            for p in read_pcapng(f):
                i = index.get(key(p))
                assert i is not None, f"{f}: a packet that was never sent"
                assert i > last, f"{f}: packet {i} after {last}: out of order or repeated"
                last = i
                seen[i] += 1
    twice = [i for i, s in enumerate(seen) if s > 1]
    missing = [i for i, s in enumerate(seen) if s == 0]
    assert not twice, f"{len(twice)} packets written twice, e.g. {twice[:5]}"
    assert not missing, f"{len(missing)} packets missing, e.g. {missing[:5]}"


def sent_packets(pcap):
    """sluice-send's view of a pcap: nanosecond timestamps."""
    return [{"ts_ns": s * 1_000_000_000 + f, "orig_len": o, "data": d}
            for s, f, _, o, d in read_pcap(pcap)]


def captured_packets(pcap):
    """sluice on net_pcap: microsecond timestamps."""
    return [{"ts_ns": s * 1_000_000_000 + f * 1000, "orig_len": c, "data": d}
            for s, f, c, _, d in read_pcap(pcap)]


def sluice_config(pcap, cluster, summary):
    urls = ", ".join(f'"127.0.0.1:{p}"' for p in cluster.client_ports)
    return textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_pcap={pcap}"
        mtu = 9000
        timestamps = "hardware"
        [lcores]
        rx = [1]
        [codec]
        type = "zstd"
        zstd_level = 19
        [batch]
        frame_size = 65536
        [capture]
        overflow = "backpressure"
        [egress]
        type = "jetstream"
        urls = [{urls}]
        stream_id = 1
        jetstream_replicas = 3
        reconnect_min_ms = 50
        reconnect_max_ms = 500
        timeout_ms = 2000
        shutdown_timeout_ms = 120000
        [stats]
        interval_s = 0
        summary_json = "{summary}"
        """)


def wait_for(what, predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_kill_a_nats_server_and_a_collector_mid_stream_every_packet_once(tmp_path, pcapgen,
                                                                         members):
    cluster = Cluster(tmp_path / "nats").start()
    try:
        pcap1 = pcapgen("in1.pcap", packets=40000, seed=71)
        pcap2 = pcapgen("in2.pcap", packets=90000, seed=72, nanosecond=True)
        want1, want2 = captured_packets(pcap1), sent_packets(pcap2)
        dirs = [tmp_path / "a", tmp_path / "b"]
        a = Member(dirs[0], cluster.url())
        b = Member(dirs[1], cluster.url())
        members += [a, b]
        report = tmp_path / "send.json"
        send = subprocess.Popen(
            [str(SEND), "--pcap", str(pcap2), "--to", cluster.url(), "--stream-id", "2",
             "--rate", "9000", "--jetstream-replicas", "3", "--timeout-ms", "2000",
             "--reconnect-max-ms", "500", "--report", str(report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        summary = tmp_path / "sluice.json"
        cfg = write_config(tmp_path, sluice_config(pcap1, cluster, summary))
        # Stopped by its packet count, not by an idle timeout: while JetStream
        # elects a new leader, backpressure holds the NIC and no packet comes.
        sluice = Running(EAL + ["--", "--config", str(cfg), "--packets", str(len(want1))],
                         timeout=60)
        try:
            wait_for("both streams written", lambda: count_packets(dirs, 1) > 0 and
                     count_packets(dirs, 2) > 0, 60)
            # The server leading the stream's replicas, killed without a goodbye.
            victim = cluster.stream_leader() or 0
            cluster.kill(victim)
            time.sleep(2)
            cluster.start(victim)
            # A collector killed mid-commit as likely as anywhere else.
            # The member writing stream 2 now (the group may have moved it
            # while the server was away) is the one killed.
            before = [count_packets([d], 2) for d in dirs]
            grown = []

            def progress():
                grown[:] = [i for i, d in enumerate(dirs) if count_packets([d], 2) > before[i]]
                return bool(grown)

            wait_for("progress after the server came back", progress, 60)
            victim, survivor = (a, b) if grown[0] == 0 else (b, a)
            victim.kill()
            # Its lease goes silent: the other member takes its stream over.
            wait_for("the surviving member to take the stream over",
                     lambda: "taken over from" in survivor.log(), 60)
            victim.start()
            assert send.wait(timeout=180) == 0, send.stderr.read()
            rc = sluice.proc.wait(timeout=300)
        finally:
            sluice.kill()
            if send.poll() is None:
                send.kill()
        assert rc == 0, "".join(sluice.stderr_lines)
        wait_for("every packet written",
                 lambda: count_packets(dirs, 1) >= len(want1) and
                 count_packets(dirs, 2) >= len(want2), 120)
        assert a.stop() == 0, a.log()
        assert b.stop() == 0, b.log()
    finally:
        cluster.stop()
    assert_exactly_once_in_order(dirs, 1, want1)
    assert_exactly_once_in_order(dirs, 2, want2)
    # Reading across the group: both directories, merged in time order.
    out = tmp_path / "all.pcapng"
    p = subprocess.run([str(QUERY), "--dir", str(dirs[0]), "--dir", str(dirs[1]), "-w",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    got = read_pcapng(out)
    assert len(got) == len(want1) + len(want2)
    times = [g["ts_ns"] for g in got]
    assert times == sorted(times)
    assert sorted(key(g) for g in got) == sorted(key(w) for w in want1 + want2)


def test_an_unreachable_cluster_is_a_clear_error(tmp_path, pcapgen):
    port = free_ports(1)[0]
    url = f"jetstream://127.0.0.1:{port}"
    t0 = time.time()
    p = subprocess.run([str(COLLECTOR), "--source", url, "--group", "g", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "no NATS server answered at nats://127.0.0.1:" in p.stderr, p.stderr
    pcap = pcapgen(packets=100)
    p = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", url, "--give-up-ms", "2000"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "no NATS server answered" in p.stderr, p.stderr
    assert time.time() - t0 < 30


def test_a_missing_nats_server_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SLUICE_NATS_SERVER", str(tmp_path / "no-such-nats-server"))
    with pytest.raises(RuntimeError, match="nats-server not found"):
        nats_helpers.nats_server_binary()


def test_a_stream_with_other_settings_is_refused_naming_them(tmp_path, pcapgen):
    cluster = Cluster(tmp_path / "nats", size=1).start()
    try:
        pcap = pcapgen(packets=200)
        ok = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", cluster.url(),
                             "--jetstream-max-age", "3600"], capture_output=True, text=True,
                            timeout=60)
        assert ok.returncode == 0, ok.stderr
        p = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", cluster.url(),
                            "--give-up-ms", "1500"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1
        assert "exists with other settings" in p.stderr, p.stderr
        assert "max_age: the stream keeps frames for 3600s, sluice wants 86400s" in p.stderr
        # Two JetStream streams cannot take the same subjects.
        p = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", cluster.url(),
                            "--jetstream-stream", "OTHER", "--give-up-ms", "1500"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1
        assert "another JetStream stream already takes subjects sluice.frames.*" in p.stderr, \
            p.stderr
    finally:
        cluster.stop()


def test_a_group_members_metrics(tmp_path, pcapgen, members):
    """--metrics on a group member: the group's counters (labelled with the
    group) beside the streams', promtool-clean, counting what it wrote."""
    from collector_helpers import free_port, metric_samples, promtool_check, scrape
    cluster = Cluster(tmp_path / "nats", size=1).start()
    try:
        pcap = pcapgen(packets=300, seed=73)
        mport = free_port()
        m = Member(tmp_path / "a", cluster.url(), extra=["--metrics", f"127.0.0.1:{mport}"])
        members.append(m)
        p = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", cluster.url(),
                            "--stream-id", "5"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        written = 'sluice_collector_stream_packets_written_total{stream="5"}'

        def all_written():
            try:
                return metric_samples(scrape(mport)).get(written) == 300
            except OSError:
                return False  # not listening yet
        wait_for("the member to write the stream", all_written, 60)
        text = scrape(mport)
        promtool_check(text)
        values = metric_samples(text)
        assert values['sluice_collector_group_streams_taken_total{group="g1"}'] == 1
        assert values['sluice_collector_group_frames_corrupt_total{group="g1"}'] == 0
        assert "# HELP sluice_collector_group_streams_taken_over_total Of those, streams " \
               "taken from a collector" in text
        assert m.stop() == 0, m.log()
    finally:
        cluster.stop()
