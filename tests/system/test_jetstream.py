"""Scale-out on NATS JetStream with real servers (docs/scale-out.md): a
3-node nats-server cluster on loopback ports (configurations written here),
sluice on a virtual NIC and sluice-send publishing into it, two collectors of
one group reading out of it. One NATS server and one collector are killed
with SIGKILL mid-stream and restarted; the union of the collectors' files
must then hold exactly the input packets, each once, each file in order, and
sluice-query over both directories returns them all in time order.

Also: an unreachable cluster and a missing nats-server are clear errors, not
hangs; a stream with other settings is refused naming the difference."""
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

import nats_helpers
from collector_helpers import COLLECTOR, SEND, output_files, read_pcapng
from conftest import BUILD, EAL, ROOT, Running, read_pcap, write_config
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
        if not Path(d).exists():
            continue  # the collector has not begun yet
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


def wait_for(what, predicate, timeout, explain=None):
    """Polls `predicate` until it holds; on a timeout the failure carries
    `explain()` (the members' logs, counts) for whoever reads the report."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    detail = f"\n{explain()}" if explain else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")


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

        def explain():
            counts = [(count_packets([d], 1), count_packets([d], 2)) for d in dirs]
            return (f"packets of streams 1/2 per member: {counts}, want "
                    f"{len(want1)}/{len(want2)}\n--- member a ---\n{a.log()[-6000:]}"
                    f"\n--- member b ---\n{b.log()[-6000:]}")
        try:
            wait_for("both streams written", lambda: count_packets(dirs, 1) > 0 and
                     count_packets(dirs, 2) > 0, 60, explain)
            # The server leading the stream's replicas, killed without a goodbye.
            victim = cluster.stream_leader() or 0
            cluster.kill(victim)
            time.sleep(2)
            cluster.start(victim)
            # A collector killed mid-commit as likely as anywhere else.
            # The member holding stream 2's lease now (the group may have
            # moved it while the server was away) is the one killed. On a
            # loaded host the stream may be complete by now: its owner still
            # holds the lease, and the take-over below happens all the same.
            before = count_packets(dirs, 2)
            wait_for("progress after the server came back",
                     lambda: count_packets(dirs, 2) > before or
                     count_packets(dirs, 2) >= len(want2), 60, explain)
            ids = [(d / ".sluice" / "collector-id").read_text().strip() for d in dirs]
            owner = []

            def owned():
                owner[:] = [lease_owner(cluster, 2)]
                return owner[0] in ids

            wait_for("a member to hold stream 2's lease", owned, 60, explain)
            victim, survivor = (a, b) if owner[0] == ids[0] else (b, a)
            victim.kill()
            # Its lease goes silent: the other member takes its stream over.
            wait_for("the surviving member to take the stream over",
                     lambda: "taken over from" in survivor.log(), 60, explain)
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
                 count_packets(dirs, 2) >= len(want2), 120, explain)
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


def nats_request(port, subject, payload):
    """One NATS request over the client protocol (no client library needed):
    the reply's payload."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO"), "not a NATS server"
        data = payload.encode()
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
                  b"SUB _INBOX.test 1\r\n" +
                  f"PUB {subject} _INBOX.test {len(data)}\r\n".encode() + data + b"\r\n")
        while True:
            line = f.readline()
            assert line and not line.startswith(b"-ERR"), line
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                return f.read(int(line.split()[-1]) + 2)[:-2]


def kv_put(port, bucket, key, value):
    """A key-value put as NATS sees it: a JetStream publish on $KV.<bucket>.<key>,
    waited for until the stream acknowledges it."""
    ack = nats_request(port, f"$KV.{bucket}.{key}", value)
    assert b'"seq"' in ack, ack


def kv_get(port, bucket, key):
    """The key's value as the bucket's leader has it, or None."""
    reply = json.loads(nats_request(port, f"$JS.API.STREAM.MSG.GET.KV_{bucket}",
                                    json.dumps({"last_by_subj": f"$KV.{bucket}.{key}"})))
    message = reply.get("message")
    return base64.b64decode(message.get("data", "")).decode() if message else None


def lease_owner(cluster, stream_id):
    """The collector id the group's lease on the stream names ("" when
    released, None when the bucket cannot say now)."""
    for port in cluster.client_ports:
        try:
            value = kv_get(port, "sluice_g1", f"lease.{stream_id}")
        except (OSError, AssertionError, ValueError):
            continue  # that server is away or electing
        if value is not None:
            return next((f[len("owner="):] for f in value.split() if f.startswith("owner=")), "")
    return None


def test_a_commit_that_raced_a_take_over_is_settled_from_the_bucket(tmp_path, pcapgen,
                                                                    members):
    """NATS servers before 2.9.21 may let a lease update carrying a commit and
    another member's take-over, both expecting the same lease revision, both
    succeed (nats-server issue 4320). A member whose update finds a take-over
    record at the revision it replaced does not count the commit until the
    bucket settles it. Here such a record is planted, so every commit of the
    stream meets it: each is settled (the lease is still the member's) and
    every packet is written exactly once."""
    cluster = Cluster(tmp_path / "nats", size=1).start()
    try:
        first = pcapgen("first.pcap", packets=200, seed=81)
        p = subprocess.run([str(SEND), "--pcap", str(first), "--to", cluster.url(),
                            "--stream-id", "5"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out = tmp_path / "a"
        a = Member(out, cluster.url())
        members.append(a)
        wait_for("the first stream written", lambda: count_packets([out], 5) >= 200, 60,
                 a.log)
        assert a.stop() == 0, a.log()
        me = (out / ".sluice" / "collector-id").read_text().strip()
        kv_put(cluster.client_ports[0], "sluice_g1", f"release.{me}.6",
               f"sluice-release v1 lease={1 << 62} js=0 next=0")
        second = pcapgen("second.pcap", packets=3000, seed=82, nanosecond=True)
        want = sent_packets(second)
        p = subprocess.run([str(SEND), "--pcap", str(second), "--to", cluster.url(),
                            "--stream-id", "6"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        a.start()
        wait_for("the second stream written", lambda: count_packets([out], 6) >= len(want),
                 120, a.log)
        assert a.stop() == 0, a.log()
    finally:
        cluster.stop()
    log = a.log()
    assert "stream 6: the lease update carrying a commit raced another collector" in log, log
    assert "stream 6: its last commit counts (the group's lease has it)" in log, log
    assert_exactly_once_in_order([out], 6, want)


class NatsProxy:
    """NATS client connections relayed to a server. `drop(words, body)` sees
    every message the server sends a client (the MSG/HMSG line split in words,
    its payload) and returns True to lose it. With `close_after`, only the
    first connection loses messages, and it breaks after that many."""

    def __init__(self, server_port, drop, close_after=None):
        self.server_port, self.drop, self.close_after = server_port, drop, close_after
        self.dropped = 0
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.server_port))
            first = self.connections == 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._filter, args=(server, client, first),
                             daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def _filter(self, src, dst, first):
        f = src.makefile("rb")
        try:
            while line := f.readline():
                words = line.split()
                body = b""
                if words and words[0] in (b"MSG", b"HMSG"):
                    body = f.read(int(words[-1]) + 2)
                    if (first or not self.close_after) and self.drop(words, body):
                        self.dropped += 1
                        if first and self.close_after and self.dropped >= self.close_after:
                            break
                        continue
                dst.sendall(line + body)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def close(self):
        self.listener.close()


def delivery_of(subject, nth):
    """A NatsProxy drop rule: the nth message a consumer delivers on `subject`."""
    seen = [0]

    def drop(words, body):
        if words[1] != subject.encode() or len(words) < 5 or \
                not words[3].startswith(b"$JS.ACK."):
            return False
        seen[0] += 1
        return seen[0] == nth
    return drop


def test_a_delivery_lost_on_its_way_is_read_again(tmp_path, pcapgen, members):
    """A message JetStream delivered that never reaches the collector (here a
    proxy drops it) must not be taken for lost: the frames' tags would say
    the frame was stored before later ones, so "proven lost". The member sees
    the consumer's delivery numbers skip one, commits what it wrote, and reads
    again from there: every packet once, the loss counted."""
    cluster = Cluster(tmp_path / "nats", size=1).start()
    proxy = NatsProxy(cluster.client_ports[0], delivery_of("sluice.frames.7", 5))
    try:
        pcap = pcapgen("in.pcap", packets=3000, seed=83, nanosecond=True)
        want = sent_packets(pcap)
        p = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", cluster.url(),
                            "--stream-id", "7", "--frame-size", "16384"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        out = tmp_path / "a"
        summary = tmp_path / "summary.json"
        a = Member(out, f"jetstream://127.0.0.1:{proxy.port}",
                   extra=["--fetch-frames", "4", "--summary-json", str(summary)])
        members.append(a)
        wait_for("the stream written", lambda: count_packets([out], 7) >= len(want), 120,
                 a.log)
        assert a.stop() == 0, a.log()
    finally:
        proxy.close()
        cluster.stop()
    assert proxy.dropped == 1
    log = a.log()
    assert "stream 7: JetStream deliveries 5..5 never reached this collector" in log, log
    assert "proven lost" not in log, log
    group = json.loads(summary.read_text())["group"]
    assert group["deliveries_lost"] == 1, group
    assert_exactly_once_in_order([out], 7, want)


def test_frames_in_flight_when_a_connection_breaks_are_freed(tmp_path, pcapgen):
    """Frames published and not yet acknowledged when the connection to NATS
    breaks are published again over the next one; the copies the broken
    connection's context held are freed. Run under AddressSanitizer, whose
    leak check fails the sender at exit otherwise: a proxy swallows the
    publish acknowledgements of the first connection, then breaks it."""
    send = ROOT / "build-asan" / "tools" / "sluice-send"
    if not send.exists():
        pytest.skip(f"needs {send} (scripts/test builds the ASan build before this group)")
    cluster = Cluster(tmp_path / "nats", size=1).start()
    proxy = NatsProxy(cluster.client_ports[0],
                      lambda words, body: body.startswith(b'{"stream"') and b'"seq"' in body,
                      close_after=8)
    try:
        pcap = pcapgen("in.pcap", packets=4000, seed=84)
        p = subprocess.run([str(send), "--pcap", str(pcap), "--to",
                            f"jetstream://127.0.0.1:{proxy.port}", "--stream-id", "8",
                            "--frame-size", "16384", "--reconnect-min-ms", "50",
                            "--reconnect-max-ms", "200", "--report", str(tmp_path / "r.json")],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    finally:
        proxy.close()
        cluster.stop()
    assert proxy.connections >= 2 and proxy.dropped >= 8
    assert p.returncode == 0, p.stderr[-4000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["acknowledged"] and report["dropped_packets"] == 0, report
    assert report["sender"]["disconnects"] >= 1, report


def test_a_member_waiting_for_the_stream_rides_out_a_server_restart(tmp_path, pcapgen,
                                                                   members):
    """A member started before any sender waits for the stream; its server
    restarting meanwhile closes that connection, and the member connects
    again instead of asking the closed one forever."""
    cluster = Cluster(tmp_path / "nats", size=1).start()
    try:
        out = tmp_path / "a"
        a = Member(out, cluster.url())
        members.append(a)
        wait_for("the member to wait for the stream", lambda: "waiting for it" in a.log(), 30,
                 a.log)
        cluster.kill(0)
        cluster.start(0)
        pcap = pcapgen("in.pcap", packets=500, seed=85)
        p = subprocess.run([str(SEND), "--pcap", str(pcap), "--to", cluster.url(),
                            "--stream-id", "9"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        wait_for("the stream written", lambda: count_packets([out], 9) >= 500, 60, a.log)
        assert a.stop() == 0, a.log()
    finally:
        cluster.stop()


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
