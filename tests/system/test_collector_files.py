"""The collector's files as an appliance's operator and its consumers see
them, against the real sluice-collector and sluice-send: a file is NAME.part
until complete and then renamed (at rotation, at stop, at the next start
after SIGKILL), --rotate-time ends files on the clock, --file-template names
files and directories, --on-rotate runs once per finished file with no
shell, --max-disk / --max-age / --min-free delete the oldest finished files
across streams, and SIGHUP reloads keys and certificates without dropping a
connection."""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_pcapng, send,
                               start_send, write_key)
from conftest import BUILD
from transport_by_hand import (ACK, REJECT, connect, frame, handshake, hello, parse_reject,
                               recv_message)

QUERY = BUILD / "tools" / "sluice-query"
DATA = re.compile(r".*\.pcapng(\.zst)?$")


# ---- helpers ------------------------------------------------------------------------

def tree(out):
    """Every file below `out` (not .sluice), as paths relative to it."""
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            found.append(Path(root, f).relative_to(out))
    return sorted(found)


def data_files(out, number=lambda p: int(p.name.split("-")[2].split(".")[0])):
    """Finished data files below `out`, in file-number order."""
    return sorted((p for p in tree(out) if DATA.match(p.name)), key=number)


def read_files(out, files):
    packets = []
    for f in files:
        packets += read_pcapng(Path(out) / f)
    return packets


def stream_of(name):
    return int(re.match(r"stream-(\d+)-", name).group(1))


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a tmpfs of the given size; unmounted afterwards."""
    mounted = []

    def make(size):
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       check=True)
        mounted.append(d)
        return d
    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


class Watcher(threading.Thread):
    """A consumer that watches the directory: each finished file it sees is
    read at once, in full; a file must be complete the moment its name
    appears, and never change afterwards."""

    def __init__(self, out):
        super().__init__(daemon=True)
        self.out = Path(out)
        self.seen = {}  # finished name -> (size, packets)
        self.parts_seen = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.look()
            time.sleep(0.01)
        self.look()

    def look(self):
        if not self.out.exists():
            return
        for p in tree(self.out):
            name = str(p)
            if name.endswith(".part"):
                self.parts_seen += 1
            if not DATA.match(name) or name in self.seen:
                continue
            try:
                data = (self.out / p).read_bytes()
                packets = read_pcapng(self.out / p)
            except FileNotFoundError:
                continue  # deleted by retention meanwhile
            except AssertionError as e:
                self.errors.append(f"{name}: read half-written: {e}")
                continue
            self.seen[name] = (len(data), len(packets))


# ---- NAME.part and the rename -----------------------------------------------------------

def test_a_watcher_never_sees_half_a_file(tmp_path, pcapgen):
    """Files are NAME.part while written and appear under their name only
    complete: rotation renames, and the stop renames the last one."""
    pcap = pcapgen(packets=12000, nanosecond=True, seed=41)
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-size", "256K"])
    watcher = Watcher(out)
    watcher.start()
    sender, _ = start_send(pcap, col.port, stream_id=3, rate=4000, flush_us=2000)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert watcher.parts_seen > 0, "no file was ever seen being written"
    assert any(str(p).endswith(".pcapng.part") for p in tree(out)), "the last file is a .part"
    assert col.stop() == 0, col.log()
    watcher.stop.set()
    watcher.join(timeout=30)
    assert watcher.errors == []
    final = tree(out)
    assert not [p for p in final if ".part" in p.name], final
    files = data_files(out)
    assert len(files) >= 4
    for f in files:
        assert (out / f).with_name(f.name + ".idx").exists()
        size, count = watcher.seen[str(f)]
        assert (out / f).stat().st_size == size, f"{f} changed after it appeared"
        assert len(read_pcapng(out / f)) == count
    assert_same_packets(read_files(out, files), expected_packets(pcap))
    s = col.result()
    assert s["files"]["files_finished"] == len(files)
    assert s["streams"][0]["file"] == "", "nothing is being written after a stop"


def test_sigkill_leaves_a_part_file_that_the_next_start_finishes(tmp_path, pcapgen):
    pcap = pcapgen(packets=20000, nanosecond=True, seed=42)
    out = tmp_path / "out"
    col = Collector(out)
    port = col.port
    sender, report = start_send(pcap, port, stream_id=5, rate=5000, flush_us=1000,
                                reconnect_min_ms=20, reconnect_max_ms=100)
    deadline = time.time() + 60
    while time.time() < deadline:
        parts = [p for p in tree(out) if p.name.endswith(".pcapng.part")]
        if parts and (out / parts[0]).stat().st_size > 100_000:
            break
        time.sleep(0.05)
    assert sender.poll() is None, "the sender finished first: raise the packet count"
    col.proc.kill()
    col.kill()
    left = [p for p in tree(out) if p.name.endswith(".pcapng.part")]
    assert len(left) == 1, tree(out)
    col = Collector(out, port=port)
    assert "left by the previous run" in col.log()
    finished = out / str(left[0])[:-len(".part")]
    assert finished.exists() and not (out / left[0]).exists()
    assert (out / (finished.name + ".idx")).exists()
    read_pcapng(finished)  # complete: cut back to its last commit
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0, col.log()
    files = data_files(out)
    assert len(files) >= 2
    assert_same_packets(read_files(out, files), expected_packets(pcap))


def test_a_stream_closed_without_its_sender_finishes_its_file(tmp_path, pcapgen):
    """--stream-idle-timeout: the file of a stream whose sender left is
    finished when the stream closes, while the collector runs on; the
    sender that returns writes the next file."""
    pcap = pcapgen(packets=2000, nanosecond=True, seed=54)
    out = tmp_path / "out"
    col = Collector(out, args=["--stream-idle-timeout", "1"])
    p, _ = send(pcap, col.port, stream_id=5)
    assert p.returncode == 0, p.stderr
    assert col.wait_for("stream 5: closed after 1 s without a sender", timeout=30), col.log()
    assert not [f for f in tree(out) if ".part" in f.name], tree(out)
    assert len(data_files(out)) == 1
    p, _ = send(pcap, col.port, stream_id=5)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    files = data_files(out)
    assert len(files) == 2
    assert_same_packets(read_files(out, files), expected_packets(pcap, repeat=2))


# ---- --rotate-time on the clock -----------------------------------------------------------

def test_rotate_time_ends_files_on_multiples_of_the_period(tmp_path, pcapgen):
    """--rotate-time 2: each file holds data written within one even-second
    period of the clock, and each next file begins in a later period. The
    file's name carries its creation time (%s), its mtime the last write."""
    period = 2
    pcap = pcapgen(packets=24000, nanosecond=True, seed=43)  # >= 6 s at 4000 pps
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-time", period,
                               "--file-template", "stream-{stream}-{n}-%s"])
    p, _ = send(pcap, col.port, stream_id=2, rate=4000, flush_us=2000)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()

    def number(f):
        return int(f.name.split("-")[2])
    files = data_files(out, number)
    assert len(files) >= 3, files
    periods = []
    for f in files:
        created = int(f.name.split("-")[3].split(".")[0])
        last_write = (out / f).stat().st_mtime_ns
        assert last_write // 10**9 // period == created // period, \
            f"{f}: written until {last_write}, after the end of its period"
        periods.append(created // period)
    assert periods == sorted(set(periods)), "two files in one period, or out of order"
    assert_same_packets(read_files(out, files), expected_packets(pcap))


# ---- --file-template ------------------------------------------------------------------------

def test_template_names_files_and_directories_and_query_finds_them(tmp_path, pcapgen):
    template = "{stream}/%Y/%m/%d/cap-%H%M%S-{n}"
    pcaps = {1: pcapgen(name="a.pcap", packets=4000, nanosecond=True, seed=44),
             2: pcapgen(name="b.pcap", packets=4000, nanosecond=True, seed=45)}
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-size", "128K", "--file-template", template])
    for sid, pcap in pcaps.items():
        p, _ = send(pcap, col.port, stream_id=sid)
        assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    shape = re.compile(r"^(\d+)/\d{4}/\d{2}/\d{2}/cap-\d{6}-(\d{6})\.pcapng$")
    by_stream = {}
    for f in tree(out):
        if f.name.endswith(".idx"):
            assert (out / str(f)[:-4]).exists(), f"{f} without its file"
            continue
        m = shape.match(str(f))
        assert m, f"{f} is not named by the template"
        by_stream.setdefault(int(m.group(1)), []).append((int(m.group(2)), f))
    assert sorted(by_stream) == [1, 2]
    for sid, files in by_stream.items():
        assert len(files) >= 2
        assert_same_packets(read_files(out, [f for _, f in sorted(files)]),
                            expected_packets(pcaps[sid]))
    assert template in (out / ".sluice" / "file-templates").read_text()

    # The template changes: sluice-query finds the files of both.
    col = Collector(out, port=col.port)
    p, _ = send(pcaps[1], col.port, stream_id=1)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    assert any(f.name.startswith("stream-1-") for f in tree(out))
    q = subprocess.run([str(QUERY), "--dir", str(out), "--stream", "1", "-w",
                        str(tmp_path / "q.pcapng")], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr
    assert len(read_pcapng(tmp_path / "q.pcapng")) == 2 * 4000


def test_template_refusals_say_what_to_write(tmp_path):
    from collector_helpers import COLLECTOR
    for template, why in [("capture-%H%M%S", "{stream} and {n} once each"),
                          ("{stream}{n}", "not a digit"),
                          ("{stream}-{n}-%b", "is not a time field"),
                          ("../{stream}-{n}", "begins with '.'")]:
        p = subprocess.run([str(COLLECTOR), "--out", str(tmp_path / "o"), "--file-template",
                            template], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and why in p.stderr, (template, p.stderr)


# ---- --on-rotate ------------------------------------------------------------------------------

def test_on_rotate_gets_each_finished_file_once_and_no_shell(tmp_path, pcapgen):
    """File names with shell syntax in them reach the command as one
    argument: nothing in them is run."""
    log = tmp_path / "rotated.log"
    script = tmp_path / "on-rotate.sh"
    script.write_text("#!/bin/sh\n"
                      f"printf '%s|%s|%s\\n' \"$1\" \"$2\" \"$SLUICE_STREAM\" >> '{log}'\n")
    script.chmod(0o755)
    pcap = pcapgen(packets=8000, nanosecond=True, seed=46)
    out = tmp_path / "out"
    template = "x;$(touch PWNED1)`touch PWNED2` '{stream}' \"{n}\""
    col = Collector(out, args=["--rotate-size", "128K", "--file-template", template,
                               "--on-rotate", f"{script} tagged", "--on-rotate-jobs", "2"])
    p, _ = send(pcap, col.port, stream_id=6, rate=8000)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    files = sorted(str((out / f).resolve()) for f in tree(out) if DATA.match(f.name))
    assert len(files) >= 4
    lines = log.read_text().splitlines()
    assert sorted(lines) == sorted(f"tagged|{f}|6" for f in files), "each file exactly once"
    for where in (tmp_path, out, Path.cwd()):
        assert not list(where.glob("PWNED*")), "a file name was run by a shell"
    s = col.result()["files"]
    assert s["on_rotate_started"] == len(files) and s["on_rotate_failed"] == 0


def test_on_rotate_failures_are_counted_and_capture_goes_on(tmp_path, pcapgen):
    pcap = pcapgen(packets=4000, nanosecond=True, seed=47)
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-size", "128K", "--on-rotate", "false"])
    p, _ = send(pcap, col.port, stream_id=1)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    files = data_files(out)
    s = col.result()["files"]
    assert s["on_rotate_failed"] == len(files) >= 2
    assert "--on-rotate: false exited with status 1 for" in col.log()
    assert_same_packets(read_files(out, files), expected_packets(pcap))


# ---- retention ---------------------------------------------------------------------------------

def deleted(log):
    return re.findall(r"retention: deleted (\S+) and its index", log)


def test_max_disk_deletes_the_oldest_files_across_streams(tmp_path, pcapgen, small_disk):
    disk = small_disk("32m")
    out = disk / "out"
    limit = 3 << 20
    pcaps = {1: pcapgen(name="a.pcap", packets=12000, nanosecond=True, seed=48),
             2: pcapgen(name="b.pcap", packets=12000, nanosecond=True, seed=49)}
    col = Collector(out, args=["--rotate-size", "256K", "--max-disk", "3M"])
    senders = [start_send(pcaps[s], col.port, stream_id=s, rate=3000, flush_us=2000)
               for s in (1, 2)]
    for proc, _ in senders:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err  # nothing unacknowledged was lost
    assert col.stop() == 0, col.log()
    total = sum((out / f).stat().st_size for f in tree(out))
    assert total <= limit, f"{total} bytes left, more than --max-disk"
    gone = deleted(col.log())
    assert col.result()["files"]["files_deleted_max_disk"] == len(gone) > 0
    # Oldest first, whichever stream: both streams lost their first files.
    assert {stream_of(Path(g).name) for g in gone} == {1, 2}
    for sid in (1, 2):
        files = [f for f in data_files(out) if stream_of(f.name) == sid]
        got = read_files(out, files)
        want = expected_packets(pcaps[sid])
        assert_same_packets(got, want[len(want) - len(got):])  # the newest, exactly


def test_max_age_deletes_files_last_written_too_long_ago(tmp_path, pcapgen):
    pcap = pcapgen(packets=4000, nanosecond=True, seed=50)
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-size", "128K"])
    p, _ = send(pcap, col.port, stream_id=1)
    assert p.returncode == 0
    assert col.stop() == 0
    files = data_files(out)
    assert len(files) >= 4
    two_days_ago = time.time() - 2 * 86400
    old = files[: len(files) // 2]
    for f in old:
        os.utime(out / f, (two_days_ago, two_days_ago))
    col = Collector(out, args=["--max-age", "1d"])
    assert col.wait_for("retention: deleted", timeout=30), col.log()
    assert col.stop() == 0
    for f in old:
        assert not (out / f).exists() and not (out / (str(f) + ".idx")).exists()
    for f in files[len(old):]:
        assert (out / f).exists()
    assert col.result()["files"]["files_deleted_max_age"] == len(old)
    assert "longer ago than --max-age 1d" in col.log()


def test_min_free_keeps_room_and_a_full_disk_loses_nothing(tmp_path, pcapgen, small_disk):
    """A disk smaller than the capture: --min-free deletes the oldest files;
    the sender never loses a frame it was not told was written."""
    disk = small_disk("12m")
    out = disk / "out"
    pcap = pcapgen(packets=30000, nanosecond=True, seed=51)  # ~20 MB of pcapng
    col = Collector(out, args=["--rotate-size", "512K", "--min-free", "6M"])
    p, rep = send(pcap, col.port, stream_id=9, rate=10000, flush_us=2000, reconnect_min_ms=50,
                  reconnect_max_ms=400, timeout=300)
    assert p.returncode == 0, p.stderr
    assert rep["dropped_packets"] == 0
    assert col.stop() == 0, col.log()
    st = os.statvfs(disk)
    assert st.f_bavail * st.f_frsize >= 6 << 20, "less than --min-free free after the stop"
    s = col.result()
    assert s["files"]["files_deleted_min_free"] == len(deleted(col.log())) > 0
    got = read_files(out, data_files(out))
    want = expected_packets(pcap)
    assert_same_packets(got, want[len(want) - len(got):])


# ---- SIGHUP ------------------------------------------------------------------------------------

KEY_A = "key-a-0123456789abcdef0123456789"
KEY_B = "key-b-9876543210fedcba9876543210"


def replace_file(path, text, mode=0o600):
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.rename(path)


def refused_reason(port, key, stream_id=1):
    s, _, nonce = connect(port)
    msg, _ = hello(nonce, key.encode(), stream_id=stream_id)
    s.sendall(msg)
    mtype, body = recv_message(s)
    s.close()
    assert mtype == REJECT, mtype
    return parse_reject(body)


def sighup(col, count):
    col.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while time.time() < deadline and col.log().count("SIGHUP:") < count:
        time.sleep(0.05)
    assert col.log().count("SIGHUP:") >= count, col.log()


def test_sighup_reloads_keys_without_dropping_a_connection(tmp_path, pcapgen):
    keyfile = write_key(tmp_path / "collector.key", KEY_A)
    a_key = write_key(tmp_path / "a.key", KEY_A)
    pcap = pcapgen(packets=9000, nanosecond=True, seed=52)
    out = tmp_path / "out"
    col = Collector(out, args=["--key-file", keyfile])
    # Connections with key A made before the reloads: one by hand, one of a
    # real sender (which streams on across them).
    early, resume = handshake(col.port, key=KEY_A.encode(), stream_id=4)
    sender, report = start_send(pcap, col.port, stream_id=1, key_file=a_key, rate=2000)
    assert col.wait_for("stream 1 connected"), col.log()
    replace_file(keyfile, KEY_B + "\n")
    sighup(col, 1)
    assert "read again: one key" in col.log()
    # New connections: A refused, B welcome.
    reason, text = refused_reason(col.port, KEY_A, stream_id=2)
    assert reason == 2, (reason, text)  # auth-failed
    s, _ = handshake(col.port, key=KEY_B.encode(), stream_id=3)
    s.close()
    # A file that cannot be used: refused, B stays.
    replace_file(keyfile, "short\n")
    sighup(col, 2)
    assert "the keys in use stay" in col.log()
    replace_file(keyfile, KEY_A + "\n", mode=0o644)
    sighup(col, 3)
    s, _ = handshake(col.port, key=KEY_B.encode(), stream_id=3)
    s.close()
    assert refused_reason(col.port, KEY_A, stream_id=2)[0] == 2
    # The connections made before the reloads were never dropped: the early
    # one's frame is written and acknowledged.
    early.sendall(frame(4, resume, 0, [(1, b"a" * 60)]))
    while True:
        mtype, body = recv_message(early)
        if mtype == ACK and struct.unpack("<Q", body)[0] == resume + 1:
            break
    early.close()
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0, col.log()
    rep = json.loads(report.read_text())
    assert rep["sender"]["connects"] == 1
    c = col.result()["counters"]
    assert c["reloads"] == 1 and c["reload_failures"] == 2
    ones = [f for f in data_files(out) if stream_of(f.name) == 1]
    assert_same_packets(read_files(out, ones), expected_packets(pcap))


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_server(d, ca):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "30",
            "-subj", f"/CN=sluice {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    (d / "ext").write_text("subjectAltName=DNS:collector.test,IP:127.0.0.1\n"
                           "extendedKeyUsage=serverAuth\n")
    openssl("req", *ec, "-keyout", f"{ca}-server.key", "-out", "server.csr", "-subj",
            "/CN=collector.test", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{ca}-server.pem", "-days", "30", "-extfile", "ext",
            cwd=d)


def test_sighup_reloads_tls_certificates(tmp_path, pcapgen):
    d = tmp_path / "tls"
    d.mkdir()
    for ca in ("old", "new"):
        make_ca_and_server(d, ca)
    cert, key = d / "server.pem", d / "server.key"
    shutil.copy(d / "old-server.pem", cert)
    shutil.copy(d / "old-server.key", key)
    key.chmod(0o600)
    pcap = pcapgen(packets=200, nanosecond=True, seed=53)
    out = tmp_path / "out"
    col = Collector(out, args=["--tls-cert", cert, "--tls-key", key])

    def sends_with(ca):
        p, _ = send(pcap, col.port, stream_id=1, tls_ca=d / f"{ca}.pem",
                    tls_server_name="collector.test", give_up_ms=2000, timeout=60)
        return p.returncode == 0
    assert sends_with("old") and not sends_with("new")
    # The new certificate, key first: until both are there a reload fails
    # (they do not match) and the old pair stays.
    shutil.copy(d / "new-server.key", key)
    sighup(col, 1)
    assert "the TLS certificate and key in use stay" in col.log()
    assert sends_with("old")
    shutil.copy(d / "new-server.pem", cert)
    sighup(col, 2)
    assert sends_with("new") and not sends_with("old")
    assert col.stop() == 0, col.log()
    c = col.result()["counters"]
    assert c["reloads"] == 1 and c["reload_failures"] == 1
