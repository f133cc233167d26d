"""Helpers for tests that run sluice-collector: the process, sluice-send, and
reading its pcapng with our own parser and with Wireshark's tools."""
import json
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from conftest import BUILD, read_pcap

COLLECTOR = BUILD / "collector" / "sluice-collector"
SEND = BUILD / "tools" / "sluice-send"


# ---- processes -------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_running = []  # collectors started by tests; conftest kills leftovers


class Collector:
    """A sluice-collector in the background; its stderr is collected."""

    def __init__(self, out, port=None, args=(), ready="listening on", timeout=30,
                 preexec_fn=None):
        self.port = port or free_port()
        self.out = Path(out)
        self.summary = self.out.parent / f"summary-{self.port}-{time.monotonic_ns()}.json"
        self.cmd = [str(COLLECTOR), "--listen", f"tcp://127.0.0.1:{self.port}", "--out",
                    str(out), "--summary-json", str(self.summary)] + [str(a) for a in args]
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=preexec_fn)
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


def output_files(out, stream_id, writing=False):
    """A stream's finished files in number order; with `writing`, the file
    being written (NAME.part) too."""
    ends = (".pcapng", ".pcapng.zst") + ((".pcapng.part", ".pcapng.zst.part") if writing else ())
    files = []
    for f in Path(out).iterdir():
        if f.name.startswith(f"stream-{stream_id}-") and f.name.endswith(ends):
            files.append((int(f.name.split("-")[2]), f))
    return [f for _, f in sorted(files)]


def read_stream(out, stream_id, writing=False):
    """A stream's packets; with `writing`, the file being written's too
    (a stream of a collector that still runs)."""
    packets = []
    for f in output_files(out, stream_id, writing):
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




def scrape(port, timeout=10):
    """GET /metrics of a listener on loopback: the text."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return r.read().decode()


def metric_samples(text):
    """{"name{labels}": value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def promtool_check(text):
    """promtool accepts the exposition, its lint (names, _total on counters,
    HELP) included: it prints nothing."""
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "" and p.stderr.strip() == "", p.stdout + p.stderr
