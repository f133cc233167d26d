"""sluice-collector end to end: pcap -> sluice-send (TcpSender) -> collector ->
pcapng, read back with our own parser and with Wireshark's (tshark, editcap,
capinfos). Also the helpers the other test_collector_*.py files use."""
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, read_pcap

COLLECTOR = BUILD / "collector" / "sluice-collector"
SEND = BUILD / "tools" / "sluice-send"


# ---- processes -------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_running = []


@pytest.fixture(autouse=True)
def no_collector_left_behind():
    """A failing test must not leave its collector running."""
    yield
    while _running:
        _running.pop().kill()


class Collector:
    """A sluice-collector in the background; its stderr is collected."""

    def __init__(self, out, port=None, args=(), ready="listening on", timeout=30):
        self.port = port or free_port()
        self.out = Path(out)
        self.summary = self.out.parent / f"summary-{self.port}-{time.monotonic_ns()}.json"
        self.cmd = [str(COLLECTOR), "--listen", f"tcp://127.0.0.1:{self.port}", "--out",
                    str(out), "--summary-json", str(self.summary)] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, text=True)
        _running.append(self)
        self.lines = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ready_text = ready
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.kill()
            raise AssertionError("collector did not start:\n" + self.log())

    def _read(self):
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line)
            if self._ready_text in line:
                self._ready.set()
        self._ready.set()

    def log(self):
        with self._lock:
            return "".join(self.lines)

    def wait_for(self, text, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return text in self.log()

    def stop(self, sig=signal.SIGINT, timeout=30):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)

    def result(self):
        return json.loads(self.summary.read_text())

    def stream(self, stream_id):
        for s in self.result()["streams"]:
            if s["stream_id"] == stream_id:
                return s
        raise AssertionError(f"stream {stream_id} not in the summary")


def send_args(pcap, port, stream_id=1, report=None, **opts):
    args = [str(SEND), "--pcap", str(pcap), "--to", f"127.0.0.1:{port}", "--stream-id",
            str(stream_id)]
    if report:
        args += ["--report", str(report)]
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        args += [flag] if v is True else [flag, str(v)]
    return args


def send(pcap, port, timeout=120, **kw):
    """Runs sluice-send to completion; returns (CompletedProcess, report dict)."""
    report = Path(str(pcap) + f".{port}.{kw.get('stream_id', 1)}.report.json")
    p = subprocess.run(send_args(pcap, port, report=report, **kw), capture_output=True, text=True,
                       timeout=timeout)
    rep = json.loads(report.read_text()) if report.exists() else None
    return p, rep


def start_send(pcap, port, **kw):
    report = Path(str(pcap) + f".{port}.{kw.get('stream_id', 1)}.report.json")
    proc = subprocess.Popen(send_args(pcap, port, report=report, **kw), stderr=subprocess.PIPE,
                            text=True)
    return proc, report


def write_key(path, text):
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


# ---- pcapng, read by our own parser -----------------------------------------------

def read_pcapng(path):
    """Packets of one pcapng file: dicts with port, queue, iface, ts_ns, orig_len, data.
    Checks the structure strictly (block lengths, byte order, if_tsresol 9)."""
    raw = Path(path).read_bytes()
    if str(path).endswith(".zst"):
        raw = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    off = 0
    ifaces = []
    packets = []
    sections = 0
    while off < len(raw):
        assert off + 12 <= len(raw), f"{path}: truncated block at {off}"
        btype, blen = struct.unpack_from("<II", raw, off)
        assert blen % 4 == 0 and blen >= 12 and off + blen <= len(raw), f"{path}: bad block at {off}"
        assert struct.unpack_from("<I", raw, off + blen - 4)[0] == blen, f"{path}: trailer at {off}"
        body = raw[off + 8:off + blen - 4]
        if btype == 0x0A0D0D0A:
            assert struct.unpack_from("<I", body, 0)[0] == 0x1A2B3C4D
            sections += 1
            ifaces = []
        elif btype == 1:
            linktype, _, snap = struct.unpack_from("<HHI", body, 0)
            opts = parse_options(body[8:])
            assert opts.get(9) == b"\x09", "if_tsresol must be 9 (nanoseconds)"
            name = opts.get(2, b"").decode()
            # sluice-s<stream>-p<port>-q<queue>
            parts = dict((p[0], int(p[1:])) for p in name.split("-")[1:])
            ifaces.append({"linktype": linktype, "name": name, "port": parts["p"],
                           "queue": parts["q"], "stream": parts["s"]})
        elif btype == 6:
            ifid, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", body, 0)
            iface = ifaces[ifid]
            packets.append({"port": iface["port"], "queue": iface["queue"], "iface": ifid,
                            "ts_ns": (hi << 32) | lo, "orig_len": origlen,
                            "data": body[20:20 + caplen]})
        off += blen
    assert sections == 1, f"{path}: {sections} sections"
    return packets


def parse_options(b):
    opts = {}
    off = 0
    while off + 4 <= len(b):
        code, ln = struct.unpack_from("<HH", b, off)
        if code == 0:
            break
        opts[code] = b[off + 4:off + 4 + ln]
        off += 4 + ((ln + 3) & ~3)
    return opts


def output_files(out, stream_id):
    files = []
    for f in Path(out).iterdir():
        if f.name.startswith(f"stream-{stream_id}-") and ".pcapng" in f.name:
            files.append((int(f.name.split("-")[2]), f))
    return [f for _, f in sorted(files)]


def read_stream(out, stream_id):
    packets = []
    for f in output_files(out, stream_id):
        packets += read_pcapng(f)
    return packets


def expected_packets(pcap, queues=1, ports=1, repeat=1, skip=()):
    """The input as sluice-send assigns it: packet i -> queue i % queues,
    port (i // queues) % ports. `skip`: packet index ranges (first, count) dropped."""
    base = list(read_pcap(pcap))
    dropped = set()
    for first, count in skip:
        dropped.update(range(first, first + count))
    out = []
    i = 0
    for _ in range(repeat):
        for sec, frac, caplen, origlen, data in base:
            if i not in dropped:
                out.append({"port": (i // queues) % ports, "queue": i % queues,
                            "ts_ns": sec * 1_000_000_000 + frac, "orig_len": origlen,
                            "data": data})
            i += 1
    return out


def assert_same_packets(got, want):
    assert len(got) == len(want), f"{len(got)} packets written, {len(want)} expected"
    for i, (g, w) in enumerate(zip(got, want)):
        for k in ("port", "queue", "ts_ns", "orig_len", "data"):
            assert g[k] == w[k], f"packet {i}: {k} differs"


def assert_order_per_queue(got, want):
    def by_queue(pkts):
        q = {}
        for p in pkts:
            q.setdefault((p["port"], p["queue"]), []).append((p["ts_ns"], p["data"]))
        return q
    assert by_queue(got) == by_queue(want)


# ---- pcapng, read by Wireshark ----------------------------------------------------

def tshark_fields(path):
    """(time_epoch, frame.len, frame.cap_len, interface name) per packet, by tshark."""
    p = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
                        "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.interface_name"],
                       capture_output=True, text=True, check=True)
    return [line.split("\t") for line in p.stdout.splitlines()]


def wireshark_bytes(path, tmp_path):
    """The packets as Wireshark's reader sees them: editcap to a nanosecond pcap."""
    conv = tmp_path / (Path(path).name + ".conv.pcap")
    src = path
    if str(path).endswith(".zst"):
        src = tmp_path / (Path(path).name + ".pcapng")
        src.write_bytes(subprocess.run(["zstd", "-dc", str(path)], capture_output=True,
                                       check=True).stdout)
    subprocess.run(["editcap", "-F", "nsecpcap", str(src), str(conv)], check=True,
                   capture_output=True)
    return list(read_pcap(conv))


def check_with_wireshark(out, stream_id, want, tmp_path):
    files = output_files(out, stream_id)
    rows, pk = [], []
    for f in files:
        plain = f
        if str(f).endswith(".zst"):
            plain = tmp_path / (f.name[:-4])
            plain.write_bytes(subprocess.run(["zstd", "-dc", str(f)], capture_output=True,
                                             check=True).stdout)
        rows += tshark_fields(plain)
        pk += wireshark_bytes(plain, tmp_path)
        info = subprocess.run(["capinfos", "-M", "-c", "-i", str(plain)], capture_output=True,
                              text=True, check=True).stdout
        assert "pcapng" in subprocess.run(["capinfos", "-t", str(plain)], capture_output=True,
                                          text=True, check=True).stdout
        assert "Number of packets" in info
    assert len(rows) == len(want) == len(pk)
    for i, (row, w, p) in enumerate(zip(rows, want, pk)):
        sec, ns = divmod(w["ts_ns"], 1_000_000_000)
        assert row[0] == f"{sec}.{ns:09d}", f"packet {i}: tshark time {row[0]}"
        assert int(row[1]) == w["orig_len"] and int(row[2]) == len(w["data"]), f"packet {i}"
        assert row[3] == f"sluice-s{stream_id}-p{w['port']}-q{w['queue']}", f"packet {i}: {row[3]}"
        assert (p[0] * 1_000_000_000 + p[1], p[3], p[4]) == (w["ts_ns"], w["orig_len"], w["data"])


# ---- the tests ----------------------------------------------------------------------

@pytest.mark.parametrize("codec,compress", [("none", None), ("lz4", None), ("zstd", "zstd")])
def test_end_to_end_exact(tmp_path, pcapgen, codec, compress):
    pcap = pcapgen(packets=6000, nanosecond=True, jumbo_percent=2, truncate_percent=5,
                   ipv6_percent=20, seed=3)
    out = tmp_path / "out"
    col = Collector(out, args=["--compress", compress] if compress else [])
    p, rep = send(pcap, col.port, stream_id=5, codec=codec, queues=3, ports=2, frame_size=65536)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    want = expected_packets(pcap, queues=3, ports=2)
    got = read_stream(out, 5)
    assert_same_packets(got, want)
    assert_order_per_queue(got, want)
    # One interface block per (port, queue) of the stream, in each file.
    assert len({(g["port"], g["queue"]) for g in got}) == 6
    check_with_wireshark(out, 5, want, tmp_path)
    s = col.stream(5)
    assert s["run"]["packets_written"] == len(want) == rep["offered_packets"]
    assert s["run"]["frames_written"] == rep["offered_frames"] == rep["sender"]["frames_acknowledged"]
    assert s["run"]["frames_lost"] == s["run"]["frames_duplicate"] == 0
    if compress:
        assert all(f.name.endswith(".pcapng.zst") for f in output_files(out, 5))
    assert "summary after" in col.log() and "stream 5:" in col.log()


@pytest.mark.parametrize("compress", [None, "zstd"])
def test_sigkill_mid_stream_every_packet_exactly_once(tmp_path, pcapgen, compress):
    """SIGKILL the collector twice while a sender streams; restart it on the same
    directory each time: the output holds every packet exactly once."""
    pcap = pcapgen(packets=100000, nanosecond=True, seed=11)  # >= 2.5 s at 40 kpps
    out = tmp_path / "out"
    extra = ["--compress", compress] if compress else []
    col = Collector(out, args=extra)
    port = col.port
    sender, report = start_send(pcap, port, stream_id=9, queues=2, rate=40000, flush_us=500,
                                frame_size=32768, reconnect_min_ms=20, reconnect_max_ms=100)
    kills = 0
    for delay in (0.5, 0.4):
        time.sleep(delay)
        assert sender.poll() is None, "the sender finished before the kill: raise the packet count"
        col.proc.kill()  # SIGKILL: no flush, no goodbye
        col.kill()
        kills += 1
        time.sleep(0.2)
        col = Collector(out, port=port, args=extra)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0, col.log()
    assert kills == 2
    rep = json.loads(report.read_text())
    assert rep["sender"]["connects"] >= 3 and rep["dropped_packets"] == 0
    want = expected_packets(pcap, queues=2)
    got = read_stream(out, 9)
    assert_same_packets(got, want)
    check_with_wireshark(out, 9, want, tmp_path)
    # Totals survive restarts: the state file carries them.
    assert col.stream(9)["all_runs"]["packets_written"] == len(want)


def test_slow_collector_drops_are_counted_exactly(tmp_path, pcapgen):
    """The collector stops (SIGSTOP) while the sender pushes on with a small
    retransmit buffer and the drop policy: every packet is either written or
    counted as dropped, on both ends, and the written ones are exact."""
    pcap = pcapgen(packets=40000, nanosecond=True, seed=5)
    out = tmp_path / "out"
    col = Collector(out)
    sender, report = start_send(pcap, col.port, stream_id=3, rate=60000, frame_size=16384,
                                retransmit_frames=4, overflow="drop", timeout_ms=60000,
                                flush_us=500)
    time.sleep(0.3)
    col.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.8)
    col.proc.send_signal(signal.SIGCONT)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0, col.log()
    rep = json.loads(report.read_text())
    s = col.stream(3)["run"]
    assert rep["dropped_packets"] > 0, "nothing was dropped: the stop was too short"
    assert rep["offered_packets"] == s["packets_written"] + rep["dropped_packets"]
    # The collector saw each dropped frame as a gap, and counted the same packets.
    assert s["packets_lost"] == rep["dropped_packets"]
    assert s["frames_lost"] == rep["dropped_frames"]
    assert rep["sender"]["submit_full"] >= rep["dropped_frames"]
    want = expected_packets(pcap, skip=rep["dropped"])
    assert_same_packets(read_stream(out, 3), want)
    assert "never arrived" in col.log()


def test_slow_collector_backpressure_loses_nothing(tmp_path, pcapgen):
    pcap = pcapgen(packets=30000, nanosecond=True, seed=6)
    out = tmp_path / "out"
    col = Collector(out)
    sender, report = start_send(pcap, col.port, stream_id=4, frame_size=16384,
                                retransmit_frames=4, overflow="backpressure", timeout_ms=60000,
                                rate=60000)
    time.sleep(0.3)
    col.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.8)
    col.proc.send_signal(signal.SIGCONT)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0
    rep = json.loads(report.read_text())
    assert rep["dropped_packets"] == 0 and rep["sender"]["submit_full"] > 0
    assert col.stream(4)["run"]["packets_written"] == rep["offered_packets"] == 30000
    assert_same_packets(read_stream(out, 4), expected_packets(pcap))


def test_sender_restart_is_a_new_session(tmp_path, pcapgen):
    """A second sluice-send on the same stream id numbers frames from 0 again:
    the collector starts a new session instead of discarding them as duplicates."""
    pcap = pcapgen(packets=3000, nanosecond=True, seed=8)
    out = tmp_path / "out"
    col = Collector(out)
    for _ in range(2):
        p, _ = send(pcap, col.port, stream_id=2)
        assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    assert "new sender session" in col.log()
    s = col.stream(2)["run"]
    assert s["packets_written"] == 6000 and s["frames_duplicate"] == 0
    assert_same_packets(read_stream(out, 2), expected_packets(pcap, repeat=1) * 2)


def test_many_senders_at_once(tmp_path, pcapgen):
    pcaps = [pcapgen(name=f"in{i}.pcap", packets=8000, nanosecond=True, seed=20 + i)
             for i in range(4)]
    out = tmp_path / "out"
    col = Collector(out)
    procs = [start_send(p, col.port, stream_id=100 + i, queues=i + 1, rate=20000)
             for i, p in enumerate(pcaps)]
    for proc, _ in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert col.stop() == 0
    for i, p in enumerate(pcaps):
        assert_same_packets(read_stream(out, 100 + i), expected_packets(p, queues=i + 1))


def test_rotation_by_size_with_keep(tmp_path, pcapgen):
    pcap = pcapgen(packets=20000, nanosecond=True, seed=9)
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-size", "1M"])
    p, _ = send(pcap, col.port, stream_id=6, frame_size=65536)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    files = output_files(out, 6)
    assert len(files) >= 4
    for f in files:
        assert f.stat().st_size <= 1 << 20
    want = expected_packets(pcap)
    assert_same_packets(read_stream(out, 6), want)
    check_with_wireshark(out, 6, want, tmp_path)

    out2 = tmp_path / "out2"
    col = Collector(out2, args=["--rotate-size", "1M", "--keep", "2"])
    p, _ = send(pcap, col.port, stream_id=6, frame_size=65536)
    assert p.returncode == 0
    assert col.stop() == 0
    files = output_files(out2, 6)
    assert len(files) == 2
    got = read_stream(out2, 6)
    # The newest files: the tail of the input, exactly.
    assert_same_packets(got, want[len(want) - len(got):])


def test_rotation_by_time(tmp_path, pcapgen):
    pcap = pcapgen(packets=12000, nanosecond=True, seed=10)
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-time", "1", "--compress", "zstd"])
    p, _ = send(pcap, col.port, stream_id=8, rate=4000, flush_us=2000)  # ~3 s
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    assert len(output_files(out, 8)) >= 2
    assert_same_packets(read_stream(out, 8), expected_packets(pcap))


def test_stats_line_and_clean_stop(tmp_path, pcapgen):
    pcap = pcapgen(packets=8000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--stats-interval", "1"])
    sender, _ = start_send(pcap, col.port, stream_id=1, rate=4000)
    assert col.wait_for("streams connected", timeout=10), col.log()
    sender.wait(timeout=60)
    assert col.stop(signal.SIGTERM) == 0
    log = col.log()
    assert "pps" in log and "summary after" in log and "connections_accepted 1" in log


def test_command_line(tmp_path):
    p = subprocess.run([str(COLLECTOR), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--rotate-size" in p.stdout and "Exit codes" in p.stdout
    p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path), "--bogus", "1"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "unknown option '--bogus'" in p.stderr
    p = subprocess.run([str(COLLECTOR)], capture_output=True, text=True)
    assert p.returncode == 2 and "--out DIR is required" in p.stderr
    p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path), "--listen", "tcp://0.0.0.0:7799"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "needs --key-file" in p.stderr
    p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path), "--key-file",
                        str(tmp_path / "missing")], capture_output=True, text=True)
    assert p.returncode == 1 and "cannot read key file" in p.stderr
    short = write_key(tmp_path / "short.key", "tooshort")
    p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path), "--key-file", str(short)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "at least 16" in p.stderr


def test_one_collector_per_directory(tmp_path):
    out = tmp_path / "out"
    col = Collector(out)
    p = subprocess.run([str(COLLECTOR), "--listen", f"tcp://127.0.0.1:{free_port()}", "--out",
                        str(out)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "another sluice-collector" in p.stderr
    p = subprocess.run([str(COLLECTOR), "--listen", f"tcp://127.0.0.1:{col.port}", "--out",
                        str(tmp_path / "other")], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot listen" in p.stderr
    assert col.stop() == 0
