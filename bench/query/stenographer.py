"""Stenographer (Debian package `stenographer`) for bench/query/run: the same
packets captured by Stenographer, and the same queries asked of it.

Stenographer captures from an interface (stenotype: AF_PACKET, TPACKET_V3)
and answers queries over HTTPS. Here it runs by hand, as root starts it but
as the `stenographer` user (as its systemd unit does), in a network
namespace of its own: stenotype captures on one end of a veth pair, and
tcpreplay sends the benchmark's pcaps into the other end. Nothing of the
system's service (/etc/stenographer, /var/lib/stenographer) is used.

Its packet and index directories are kept beside the benchmark's capture
directory (DIR/stenographer), with the inputs they were made from, so that
the next run reuses them as it reuses the capture directory.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

NETNS = "sluice-bench-query"
VETH_OUT, VETH_IN = "sqb0", "sqb1"  # tcpreplay sends on sqb0; sqb1 is in NETNS
PORT = 9443
USER = "stenographer"
BLOCK = 1 << 20  # stenotype's block (--blocksize_kb default); its files are whole blocks
# stenotype's flags, for a 2-core machine: one thread, a 256 MiB ring, files
# rotated at 1 GiB (as the benchmark's collector rotates them) or after a
# minute (its default); no preallocation, no watchdog (it aborts stenotype
# when no packets come for a while); -v for its drop counts.
FLAGS = ["--blocks=256", "--aiops=32", "--filesize_mb=1024", "--preallocate_file_mb=0",
         "--no_watchdogs", "-v"]
# While answering queries nothing is captured: no rotation of (empty) files.
QUERY_FLAGS = FLAGS + ["--fileage_sec=86400"]
CLONE_NEWNET = 0x40000000


def available():
    return all(shutil.which(b) for b in ("stenographer", "stenotype", "stenokeys", "tcpreplay",
                                         "curl", "setpriv"))


def version():
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "stenographer"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def stored_packets(packets_dir):
    """Packets in stenotype's files: the sum of its blocks' packet counts
    (struct tpacket_block_desc: num_pkts at byte 12)."""
    n = 0
    for f in sorted(Path(packets_dir).iterdir()):
        if f.name.startswith("."):
            continue
        with open(f, "rb") as fh:
            while True:
                head = fh.read(16)
                if len(head) < 16:
                    break
                n += struct.unpack_from("<I", head, 12)[0]
                fh.seek(BLOCK - 16, os.SEEK_CUR)
    return n


def pcap_packets(path):
    """Records in a pcap file (either byte order)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return 0
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        n = 0
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return n
            f.seek(struct.unpack(order + "4I", rec)[2], os.SEEK_CUR)
            n += 1


def data_files(sdir):
    """Stenographer's files: packets and index (visible ones)."""
    return [f for d in ("packets", "index") for f in sorted((sdir / d).iterdir())
            if not f.name.startswith(".")]


def sizes(sdir):
    def total(d):
        return sum(f.stat().st_size for f in (sdir / d).iterdir() if not f.name.startswith("."))
    return total("packets"), total("index")


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p.stdout


class Stenographer:
    """A stenographer server on DIR's packet and index directories, in its
    network namespace; a context manager that removes the namespace, the
    veth pair and its processes on the way out, whatever happens."""

    def __init__(self, sdir, log):
        self.sdir, self.log = Path(sdir), log
        self.work = Path(tempfile.mkdtemp(prefix="sluice-bench-steno-"))
        self.server = self.ns_fd = None
        self.stenotype = set()  # stenotype's pids, the server's children
        self.libc = ctypes.CDLL(None, use_errno=True)

    # the namespace and the veth pair

    def __enter__(self):
        self.remove_net()  # left by a run that was killed
        run(["ip", "netns", "add", NETNS])
        run(["ip", "link", "add", VETH_OUT, "mtu", "9000", "type", "veth", "peer", "name",
             VETH_IN, "mtu", "9000", "netns", NETNS])
        # No IPv6 (router solicitations, MLD reports) on either end: the only
        # packets stenotype sees are the ones sent.
        run(["sysctl", "-qw", f"net.ipv6.conf.{VETH_OUT}.disable_ipv6=1"])
        run(["ip", "netns", "exec", NETNS, "sysctl", "-qw",
             f"net.ipv6.conf.{VETH_IN}.disable_ipv6=1"])
        run(["ip", "link", "set", VETH_OUT, "up"])
        for dev in ("lo", VETH_IN):
            run(["ip", "-n", NETNS, "link", "set", dev, "up"])
        self.ns_fd = os.open(f"/run/netns/{NETNS}", os.O_RDONLY)
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            if self.ns_fd is not None:
                os.close(self.ns_fd)
                self.ns_fd = None
            self.remove_net()
            shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def remove_net():
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
        subprocess.run(["ip", "link", "del", VETH_OUT], capture_output=True)

    def enter_netns(self):
        """preexec_fn: the child joins the namespace before it executes."""
        if self.libc.setns(self.ns_fd, CLONE_NEWNET) != 0:
            os._exit(127)

    # the server

    def config(self, flags):
        c = {"Threads": [{"PacketsDirectory": str(self.sdir / "packets"),
                          "IndexDirectory": str(self.sdir / "index"),
                          "MaxDirectoryFiles": 30000, "DiskFreePercentage": 1}],
             "StenotypePath": shutil.which("stenotype"), "Interface": VETH_IN, "Port": PORT,
             "Host": "127.0.0.1", "Flags": flags, "CertPath": str(self.sdir / "certs")}
        path = self.work / "config"
        path.write_text(json.dumps(c, indent=1))
        path.chmod(0o644)
        return path

    def prepare(self):
        """Directories (the stenographer user's) and certificates (stenokeys)."""
        for d in ("packets", "index"):
            (self.sdir / d).mkdir(parents=True, exist_ok=True)
            shutil.chown(self.sdir / d, USER, USER)
        self.sdir.chmod(0o755)
        if not (self.sdir / "certs" / "client_key.pem").exists():
            self.log("stenographer: making its CA, server and client certificates (stenokeys)")
            env = dict(os.environ, STENOGRAPHER_CONFIG=str(self.config(FLAGS)))
            run(["stenokeys", USER, "root"], env=env)

    def start(self, flags):
        """Starts the server (which starts stenotype) and waits until
        stenotype captures and the server has opened every file there is."""
        self.prepare()
        self.logfile = self.work / "stenographer.log"
        self.work.chmod(0o755)
        tmp = self.work / "tmp"  # the server's directory of links to the thread's
        tmp.mkdir(exist_ok=True)
        shutil.chown(tmp, USER, USER)
        env = dict(os.environ, TMPDIR=str(tmp))
        with open(self.logfile, "w") as log:
            self.server = subprocess.Popen(
                ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
                 "stenographer", "-config", str(self.config(flags)), "-syslog=false", "-v", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=self.enter_netns)
        files = len([f for f in (self.sdir / "packets").iterdir() if not f.name.startswith(".")])
        deadline = time.time() + 60
        while time.time() < deadline:
            text = self.logfile.read_text(errors="replace")
            if self.server.poll() is not None:
                raise RuntimeError("stenographer stopped: " + text[-3000:])
            if ("starting to process packets" in text
                    and text.count("new blockfile") >= files
                    and self.query("host 0.0.0.1") is not None):
                self.children()
                return
            time.sleep(0.2)
        raise RuntimeError("stenographer did not start: " + self.logfile.read_text()[-3000:])

    def children(self):
        """The server's stenotype (it restarts it if it stops)."""
        for t in Path(f"/proc/{self.server.pid}/task").glob("*/children"):
            try:
                self.stenotype |= {int(x) for x in t.read_text().split()}
            except OSError:
                pass

    def stop(self):
        """Stops the server and its stenotype (killed: stenotype stops only
        when packets come), and removes what a stopped stenotype leaves: the
        hidden file it was writing, and files that hold no packet."""
        if self.server is None:
            return
        if self.server.poll() is None:
            self.children()
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        for pid in self.stenotype:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                if Path(os.fsdecode(cmd)).name != "stenotype":
                    continue
                os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue
            for _ in range(100):
                try:
                    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                        break
                except OSError:
                    break
                time.sleep(0.05)
        self.server, self.stenotype = None, set()
        packets, index = self.sdir / "packets", self.sdir / "index"
        for d in (packets, index):
            for f in d.iterdir():
                if f.name.startswith("."):
                    f.unlink()
        for f in packets.iterdir():
            if f.stat().st_size == 0:
                f.unlink()
                (index / f.name).unlink(missing_ok=True)

    # capture

    def replay(self, pcap, pps=None):
        """tcpreplay PCAP into the veth pair: (packets sent, seconds)."""
        rate = [f"--pps={pps}"] if pps else ["--topspeed"]
        out = run(["tcpreplay", f"--intf1={VETH_OUT}"] + rate + [str(pcap)])
        sent = int(re.search(r"Successful packets:\s+(\d+)", out).group(1))
        failed = int(re.search(r"Failed packets:\s+(\d+)", out).group(1))
        secs = float(re.search(r"Actual: \d+ packets \(\d+ bytes\) sent in ([\d.]+) seconds",
                               out).group(1))
        if failed:
            raise RuntimeError(f"tcpreplay could not send {failed} packets of {pcap}")
        return sent, secs

    def flushed(self, timeout):
        """Waits until stenotype has closed the file it was writing packets to
        (it closes files after a minute) and written every index."""
        packets, index = self.sdir / "packets", self.sdir / "index"
        deadline = time.time() + timeout
        while time.time() < deadline:
            hidden = [f for f in packets.iterdir() if f.name.startswith(".")]
            visible = [f for f in packets.iterdir() if not f.name.startswith(".")]
            if (all(f.stat().st_size == 0 for f in hidden)
                    and all((index / f.name).exists() for f in visible)):
                return True
            time.sleep(1)
        return False

    def drops(self):
        """stenotype's own count of packets the kernel dropped (its last
        stats line, -v), or None."""
        found = re.findall(r"Thread 0 stats: .* drops=(\d+)", self.logfile.read_text())
        return int(found[-1]) if found else None

    # queries

    def query_cmd(self, filt, out):
        """curl, as stenocurl runs it, POSTing FILT to /query: (argv, Popen
        keyword arguments). The command joins the namespace as it starts."""
        certs = self.sdir / "certs"
        return (["curl", "-sS", "--fail", "--cert", str(certs / "client_cert.pem"),
                 "--key", str(certs / "client_key.pem"), "--cacert", str(certs / "ca_cert.pem"),
                 "-d", filt, "-o", str(out), f"https://127.0.0.1:{PORT}/query"],
                {"preexec_fn": self.enter_netns})

    def query(self, filt):
        """Packets stenographer returns for FILT, or None if it did not answer."""
        out = self.work / "answer.pcap"
        argv, kw = self.query_cmd(filt, out)
        if subprocess.run(argv, capture_output=True, **kw).returncode != 0:
            return None
        n = pcap_packets(out)
        out.unlink()
        return n


def capture(sdir, params, streams, make_pcap, log):
    """Stenographer's packet and index directories for the benchmark's
    streams, made once for PARAMS (kept in SDIR/complete.json with what the
    capture counted). make_pcap(stream) writes a stream's pcap and returns
    its path; each is replayed, then removed. If stenotype stores fewer
    packets than were sent, the capture is made again at half the rate."""
    sdir = Path(sdir)
    params = dict(params, stenographer=version(), flags=FLAGS)
    marker = sdir / "complete.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("params") == params:
            log(f"stenographer: reusing {sdir} ({done['stored']} packets)")
            return done
    pps = None
    for attempt in range(4):
        for d in ("packets", "index"):
            shutil.rmtree(sdir / d, ignore_errors=True)
        marker.unlink(missing_ok=True)
        sent, secs, t0 = 0, 0.0, time.time()
        with Stenographer(sdir, log) as st:
            st.start(FLAGS)
            for s in streams:
                pcap = make_pcap(s)
                try:
                    log(f"stenographer: stream {s}: tcpreplay "
                        f"{'--topspeed' if pps is None else f'--pps={pps}'}")
                    n, t = st.replay(pcap, pps)
                finally:
                    pcap.unlink()
                sent, secs = sent + n, secs + t
            log("stenographer: waiting for stenotype to close its last file")
            if not st.flushed(180):
                raise RuntimeError("stenotype did not close its file within 3 minutes")
            drops = st.drops()
        stored = stored_packets(sdir / "packets")
        result = {"params": params, "sent": sent, "stored": stored, "drops": drops,
                  "replay_pps": round(sent / secs), "rate": pps or "topspeed",
                  "seconds": round(time.time() - t0, 1)}
        log(f"stenographer: {sent} packets sent at {sent / secs / 1e3:.0f} kpps, {stored} stored"
            f" (stenotype counted {drops} dropped)")
        if stored >= sent:  # more: packets from elsewhere (reported by the caller)
            marker.write_text(json.dumps(result))
            return result
        pps = int(sent / secs / 2)
        log(f"stenographer: {sent - stored} packets lost; again at {pps} packets/s")
    raise RuntimeError(f"stenographer lost packets even at {pps * 2} packets/s")
