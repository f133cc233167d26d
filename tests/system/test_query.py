"""sluice-query end to end: captures sent through sluice-send into a
sluice-collector (plain and zstd, rotated, several streams, killed and
restarted), queried with sluice-query, and checked against tcpdump over every
file with the same filter: the same packets, the same bytes, the same order.

The reference is tcpdump -r FILE -w OUT FILTER per file (nanosecond pcap),
the time range applied here, and the files merged here by (time, stream,
directory, file, position): what sluice-query promises (docs/query.md)."""
import json
import random
import struct
import subprocess
import time
from pathlib import Path

import pytest

from collector_helpers import Collector, read_pcapng, send, start_send
from conftest import BUILD, read_pcap

QUERY = BUILD / "tools" / "sluice-query"
T0 = 1_700_000_000


# ---- captures with what real links carry besides plain TCP/UDP ----------------------

def ipv4_header(proto, src, dst, payload_len, frag=0x4000, ihl=5, options=b""):
    total = ihl * 4 + payload_len
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 7, frag, 64, proto, 0,
                      bytes(src), bytes(dst))
    return hdr + options


def ipv6_header(next_header, src, dst, payload_len):
    return struct.pack("!IHBB16s16s", 0x60000000, payload_len, next_header, 64, bytes(src),
                       bytes(dst))


def ether(ethertype, tags=()):
    out = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2])
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype)


def v4(a, b, c, d):
    return bytes([a, b, c, d])


def v6(last):
    return bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 10 + [last >> 8, last & 0xff])


def special_packets(n, seed):
    """(ts_ns, data, orig_len) records: VLAN and QinQ, IPv4 fragments and
    options, IPv6 extension headers and fragments, ARP, ICMP, SCTP, records
    cut short, and malformed headers. A few hosts appear only in short
    windows, as hosts do."""
    rng = random.Random(seed)
    out = []
    t = T0 * 1_000_000_000 + 500_000
    for i in range(n):
        t += 1 + rng.randrange(40_000)
        kind = rng.randrange(14)
        # Host 10.9.<window>.<k>: a new handful every 2000 packets.
        win = i // 2000
        a = v4(10, 9, win, 1 + rng.randrange(4))
        b = v4(192, 0, 2, 1 + rng.randrange(8))
        sport, dport = 40000 + rng.randrange(50), rng.choice([53, 80, 443, 5001, 5005])
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        tags = ()
        if kind in (0, 1):
            tags = ((0x8100, 100 + rng.randrange(3)),)
        elif kind == 2:
            tags = ((0x88a8, 7), (0x8100, 200))
        if kind <= 3:  # TCP or UDP over IPv4, tagged or not
            proto = rng.choice([6, 17])
            l4 = struct.pack("!HH", sport, dport) + bytes(16 if proto == 6 else 4)
            data = ether(0x0800, tags) + ipv4_header(proto, a, b, len(l4) + len(payload)) + l4 + payload
        elif kind == 4:  # IPv4 fragments: the first has the ports, the others not
            l4 = struct.pack("!HHHH", sport, dport, 8 + 2 * len(payload), 0)
            data = ether(0x0800) + ipv4_header(17, a, b, len(l4) + len(payload), frag=0x2000) + l4 + payload
            out.append((t, data, len(data)))
            t += 1
            data = ether(0x0800) + ipv4_header(17, a, b, len(payload), frag=0x0000 | 5) + payload
        elif kind == 5:  # IPv4 with options (IHL 6)
            l4 = struct.pack("!HH", sport, dport) + bytes(4)
            data = ether(0x0800) + ipv4_header(17, a, b, len(l4), ihl=6, options=bytes(4)) + l4
        elif kind == 6:  # IPv6: hop-by-hop, destination options, then UDP or TCP
            proto = rng.choice([6, 17])
            l4 = struct.pack("!HH", sport, dport) + bytes(16 if proto == 6 else 4)
            ext = bytes([60, 0]) + bytes(6) + bytes([proto, 0]) + bytes(6)
            data = ether(0x86dd) + ipv6_header(0, v6(win * 16 + 1), v6(0x99), len(ext) + len(l4)) + ext + l4
        elif kind == 7:  # IPv6 UDP directly, and a fragment header (first, then a later one)
            l4 = struct.pack("!HHHH", sport, dport, 8, 0)
            if rng.randrange(2):
                data = ether(0x86dd) + ipv6_header(17, v6(win * 16 + 2), v6(0x99), len(l4)) + l4
            else:
                frag = struct.pack("!BBHI", 17, 0, 1, 99)
                data = ether(0x86dd) + ipv6_header(44, v6(win * 16 + 3), v6(0x99), 16) + frag + l4
                out.append((t, data, len(data)))
                t += 1
                frag = struct.pack("!BBHI", 17, 0, 8 << 3, 99)
                data = ether(0x86dd) + ipv6_header(44, v6(win * 16 + 3), v6(0x99), 8 + len(payload)) + frag + payload
        elif kind == 8:  # ARP: `host` matches its addresses too
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes(6) + a + bytes(6) + b
            data = ether(0x0806) + arp
        elif kind == 9:  # ICMP and ICMPv6
            if rng.randrange(2):
                icmp = bytes([8, 0, 0, 0, 0, 1, 0, 1]) + payload
                data = ether(0x0800) + ipv4_header(1, a, b, len(icmp)) + icmp
            else:
                icmp = bytes([128, 0, 0, 0, 0, 1, 0, 1])
                data = ether(0x86dd) + ipv6_header(58, v6(win * 16 + 4), v6(0x99), len(icmp)) + icmp
        elif kind == 10:  # SCTP
            l4 = struct.pack("!HHII", sport, dport, 1, 0)
            data = ether(0x0800, tags) + ipv4_header(132, a, b, len(l4)) + l4
        elif kind == 11:  # cut by the capture length somewhere in the headers
            l4 = struct.pack("!HH", sport, dport) + bytes(16)
            full = ether(0x0800, ((0x8100, 100),) if rng.randrange(2) else ()) + \
                ipv4_header(6, a, b, len(l4) + len(payload)) + l4 + payload
            cut = rng.choice([14, 20, 27, 30, 34, 38, 40, 42, 44])
            out.append((t, full[:cut], len(full)))
            continue
        elif kind == 12:  # malformed: IHL below 5, or pointing past the packet
            l4 = struct.pack("!HH", sport, dport) + bytes(4)
            ihl = rng.choice([0, 2, 15])
            hdr = ipv4_header(17, a, b, len(l4))
            hdr = bytes([0x40 | ihl]) + hdr[1:]
            data = ether(0x0800) + hdr + l4
        else:  # plain UDP of a host of its own window, once in a while
            l4 = struct.pack("!HHHH", 7000 + win, 9000, 8, 0)
            data = ether(0x0800) + ipv4_header(17, v4(172, 16, win, 9), b, len(l4)) + l4
        out.append((t, data, len(data)))
    return out


def write_pcap(path, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for ts, data, orig in records:
            f.write(struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, len(data), orig))
            f.write(data)
    return path


# ---- running sluice-query and the reference -------------------------------------------

def query(dirs, *args, out=None, check=True):
    cmd = [str(QUERY)]
    for d in dirs:
        cmd += ["--dir", str(d)]
    cmd += [str(a) for a in args]
    if out is not None:
        cmd = cmd[:1] + ["-w", str(out)] + cmd[1:]
    p = subprocess.run(cmd, capture_output=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def query_packets(tmp_path, dirs, filt, frm=None, to=None, extra=()):
    out = tmp_path / f"q-{time.monotonic_ns()}.pcapng"
    args = list(extra)
    if frm is not None:
        args += ["--from", frm]
    if to is not None:
        args += ["--to", to]
    p = query(dirs, *args, *(["--", filt] if filt else []), out=out)
    return [(pk["ts_ns"], pk["orig_len"], pk["data"]) for pk in read_pcapng_any(out)], p


def read_pcapng_any(path):
    """Packets of a pcapng whose interfaces need not be sluice's own."""
    raw = Path(path).read_bytes()
    off, packets = 0, []
    tsresol = []
    while off < len(raw):
        btype, blen = struct.unpack_from("<II", raw, off)
        assert blen >= 12 and off + blen <= len(raw), f"{path}: bad block at {off}"
        body = raw[off + 8:off + blen - 4]
        if btype == 1:
            res = 6
            o = 8
            while o + 4 <= len(body):
                code, ln = struct.unpack_from("<HH", body, o)
                if code == 0:
                    break
                if code == 9:
                    res = body[o + 4]
                o += 4 + ((ln + 3) & ~3)
            tsresol.append(res)
        elif btype == 6:
            ifid, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", body, 0)
            ts = (hi << 32) | lo
            res = tsresol[ifid]
            ts = ts * 10 ** (9 - res) if res <= 9 else ts // 10 ** (res - 9)
            packets.append({"ts_ns": ts, "orig_len": origlen, "data": body[20:20 + caplen]})
        off += blen
    return packets


def data_files(d):
    """(stream, file number, path) of a capture directory's data files,
    finished and being written (NAME.part: sluice-query reads those too)."""
    out = []
    for f in Path(d).iterdir():
        if f.name.startswith("stream-") and f.name.endswith(
                (".pcapng", ".pcapng.zst", ".pcapng.part", ".pcapng.zst.part")):
            parts = f.name.split("-")
            out.append((int(parts[1]), int(parts[2]), f))
    return sorted(out)


def reference(tmp_path, dirs, filt, frm_ns=0, to_ns=2**64, streams=None, torn=False):
    """What tcpdump finds in every file with the filter, in the time range,
    merged by (time, stream, directory, file, position). `torn`: files may
    end in a block or zstd frame a killed writer left incomplete."""
    rows = []
    for di, d in enumerate(dirs):
        for stream, number, f in data_files(d):
            if streams is not None and stream not in streams:
                continue
            src = f
            if f.name.endswith((".zst", ".zst.part")):
                src = tmp_path / (f.name.replace(".zst", "") + ".plain")
                z = subprocess.run(["zstd", "-dc", str(f)], capture_output=True)
                assert z.returncode == 0 or torn, z.stderr
                src.write_bytes(z.stdout)
            out = tmp_path / f"ref-{time.monotonic_ns()}.pcap"
            p = subprocess.run(["tcpdump", "-r", str(src), "--time-stamp-precision", "nano",
                                "-w", str(out)] + ([filt] if filt else []),
                               capture_output=True, text=True)
            assert p.returncode == 0 or (torn and "truncated" in p.stderr), p.stderr
            if torn and not out.exists():
                continue  # a new file whose first block the kill cut: nothing in it yet
            for pos, (sec, ns, caplen, orig, data) in enumerate(read_pcap(out)):
                ts = sec * 1_000_000_000 + ns
                if frm_ns <= ts < to_ns:
                    rows.append(((ts, stream, di, number, pos), (ts, orig, data)))
    rows.sort(key=lambda r: r[0])
    return [r[1] for r in rows]


def assert_same(got, want, what):
    assert len(got) == len(want), f"{what}: {len(got)} packets, tcpdump {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{what}: packet {i} differs (time {g[0]} vs {w[0]})"


def read_stats(stderr):
    """'read: X of Y data' and the blocks, from --verbose."""
    line = [l for l in stderr.decode().splitlines() if "blocks opened" in l][-1]
    return line


# ---- the capture directories the tests share -------------------------------------------

FILTERS = [
    "",
    "host 10.9.3.2",
    "src host 10.9.7.1",
    "dst host 192.0.2.3",
    "host 10.9.2.1 or host 10.9.11.4",
    "host 2001:db8::31",
    "ip6 host 2001:db8::99",
    "port 5005",
    "tcp port 443",
    "udp and port 53",
    "sctp",
    "icmp or icmp6",
    "arp",
    "arp host 10.9.5.3",
    "vlan and host 10.9.4.2",
    "vlan 101",
    "host 10.9.6.1 and port 80",
    "ip[6:2] & 0x1fff != 0",
    "ip6 proto 44",
    "not host 192.0.2.1 and udp",
    "net 10.9.8.0/24",
    "portrange 7000-7003",
    "host 172.16.9.9",
    "tcp[13] & 2 != 0",
    "len > 1000",
    "greater 200 and host 10.1.17.23",
]


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """Two directories written by collectors: A (plain, rotated, three
    streams, one capture sent twice: the same timestamps in two streams) and
    B (zstd, rotated, both captures again as two more streams)."""
    base = tmp_path_factory.mktemp("query")
    gen = BUILD / "tools" / "sluice-pcapgen"
    common = base / "common.pcap"
    subprocess.run([str(gen), "--out", str(common), "--packets", "30000", "--nanosecond",
                    "--seed", "31", "--ipv6-percent", "25", "--truncate-percent", "5",
                    "--jumbo-percent", "1", "--flow-packets", "300"], check=True)
    special = write_pcap(base / "special.pcap", special_packets(24000, 5))
    a, b = base / "A", base / "B"
    col = Collector(a, args=["--rotate-size", "2M"])
    for stream, pcap, queues in ((1, common, 2), (2, special, 1), (3, common, 3)):
        p, _ = send(pcap, col.port, stream_id=stream, queues=queues, frame_size=32768)
        assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    col = Collector(b, args=["--rotate-size", "4M", "--compress", "zstd"])
    for stream, pcap, queues in ((7, special, 2), (8, common, 1)):
        p, _ = send(pcap, col.port, stream_id=stream, queues=queues, frame_size=16384)
        assert p.returncode == 0, p.stderr
    assert col.stop() == 0, col.log()
    return base, [a, b]


# ---- the tests --------------------------------------------------------------------------

@pytest.mark.parametrize("filt", FILTERS)
def test_query_equals_tcpdump_over_every_file(tmp_path, captures, filt):
    _, dirs = captures
    got, _ = query_packets(tmp_path, dirs, filt)
    assert_same(got, reference(tmp_path, dirs, filt), f"filter '{filt}'")


def test_time_ranges_in_every_format(tmp_path, captures):
    _, dirs = captures
    # The captures span about half a second from T0 (2023-11-14T22:13:20Z).
    frm, to = T0 * 10**9 + 100_250_000, T0 * 10**9 + 300_000_005
    cases = [
        ("2023-11-14T22:13:20.10025Z", "2023-11-14T22:13:20.300000005Z"),
        ("2023-11-14T23:13:20.100250+01:00", "2023-11-14 21:13:20.300000005-01:00"),
        (f"{T0}.10025", f"{T0}.300000005"),
    ]
    for filt in ("", "udp", "host 10.9.3.2 or host 10.9.10.1"):
        want = reference(tmp_path, dirs, filt, frm, to)
        assert want, "the range must hold packets"
        for f, t in cases:
            got, _ = query_packets(tmp_path, dirs, filt, f, t)
            assert_same(got, want, f"'{filt}' from {f} to {t}")
    # Only --from, only --to.
    got, _ = query_packets(tmp_path, dirs, "", frm=f"{T0}.2")
    assert_same(got, reference(tmp_path, dirs, "", T0 * 10**9 + 200_000_000), "--from alone")
    got, _ = query_packets(tmp_path, dirs, "tcp", to=f"{T0}.1")
    assert_same(got, reference(tmp_path, dirs, "tcp", 0, T0 * 10**9 + 100_000_000), "--to alone")


def test_streams_and_directories_select(tmp_path, captures):
    _, dirs = captures
    got, _ = query_packets(tmp_path, dirs, "udp", extra=["--stream", "2", "--stream", "7"])
    assert_same(got, reference(tmp_path, dirs, "udp", streams={2, 7}), "--stream 2 --stream 7")
    # Streams 2 and 7 carry the same capture: each packet twice, stream 2's first.
    assert got and got[::2] == got[1::2]


def test_the_index_narrows_what_is_read(tmp_path, captures):
    """A host seen in one window reads a small part of the data, compressed or
    not; a filter the index cannot narrow reads every block in the range."""
    _, dirs = captures
    for d in dirs:
        _, p = query_packets(tmp_path, [d], "host 10.9.3.2", extra=["-v"])
        line = read_stats(p.stderr)
        pct = float(line.split("data (")[1].split("%")[0])
        assert pct < 20, line
        blocks = [int(x) for x in line.split("blocks opened")[0].split()[-1:]]
        assert blocks and blocks[0] > 10, line
    _, p = query_packets(tmp_path, [dirs[1]], "len > 1000", extra=["-v"])
    line = read_stats(p.stderr)
    counts = line.split("blocks opened, ")[1].split(" read")[0]  # "M in the time range, K"
    in_range, read = int(counts.split()[0]), int(counts.split()[-1])
    assert in_range == read > 10, line


def test_reindex_returns_what_the_incremental_index_returns(tmp_path, captures):
    base, dirs = captures
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(dirs[1]), str(copy)], check=True)
    before = {f: query_packets(tmp_path, [copy], f)[0] for f in FILTERS[:12]}
    files = [str(f) for _, _, f in data_files(copy)]
    for f in files:
        Path(f + ".idx").unlink()
    p = query([copy], "--", "udp", out=tmp_path / "x.pcapng")
    assert b"without a usable index were read in full" in p.stderr
    p = subprocess.run([str(QUERY), "--reindex", "-v"] + files, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    assert all(Path(f + ".idx").exists() for f in files)
    for f, want in before.items():
        assert_same(query_packets(tmp_path, [copy], f)[0], want, f"reindexed, '{f}'")


def test_collector_without_index_gives_the_same_answers(tmp_path, captures):
    base, _ = captures
    out = tmp_path / "noindex"
    col = Collector(out, args=["--rotate-size", "1M", "--no-index"])
    p, _ = send(base / "special.pcap", col.port, stream_id=7, queues=2, frame_size=16384)
    assert p.returncode == 0, p.stderr
    assert col.stop() == 0
    assert not list(out.glob("*.idx"))
    for f in ("host 10.9.3.2", "vlan and host 10.9.4.2", "ip6 proto 44"):
        got, p = query_packets(tmp_path, [out], f)
        assert_same(got, reference(tmp_path, [out], f), f)
        assert b"without a usable index" in p.stderr


@pytest.mark.parametrize("compress", [None, "zstd"])
def test_sigkill_mid_stream_then_restart(tmp_path, pcapgen, compress):
    """Kill the collector twice while a sender streams, restart it: the index
    catches up with what the files hold, and queries equal tcpdump. Between a
    kill and the restart, queries already see every packet the files hold."""
    pcap = pcapgen(packets=80000, nanosecond=True, seed=12, flow_packets=200)
    out = tmp_path / "out"
    extra = ["--rotate-size", "2M"] + (["--compress", compress] if compress else [])
    col = Collector(out, args=extra)
    port = col.port
    sender, report = start_send(pcap, port, stream_id=9, queues=2, rate=40000, flush_us=500,
                                frame_size=32768, reconnect_min_ms=20, reconnect_max_ms=100)
    logs = []
    for delay in (0.6, 0.5):
        time.sleep(delay)
        assert sender.poll() is None, "the sender finished before the kill: raise the packet count"
        col.proc.kill()
        col.kill()
        # Killed: a query returns what the files hold, up to the last whole
        # block (and zstd frame) of each; the kill may have cut the write of
        # the last, uncommitted batch, which tcpdump may read part of.
        got, _ = query_packets(tmp_path, [out], "udp")
        want = reference(tmp_path, [out], "udp", torn=True)
        assert got == want[:len(got)] and len(want) - len(got) < 2000, \
            f"while stopped: {len(got)} packets, the files {len(want)}"
        col = Collector(out, port=port, args=extra)
        logs.append(col.log())
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0, col.log()
    assert any("index:" in l for l in logs), "a restart should have indexed a killed tail"
    for f in ("", "host 10.0.1.7 or port 53", "tcp and not port 443"):
        got, _ = query_packets(tmp_path, [out], f)
        assert_same(got, reference(tmp_path, [out], f), f"after kills, '{f}'")
    # Every file's index covers it whole, and all but the current one are finished.
    for _, _, f in data_files(out):
        assert Path(str(f) + ".idx").exists()
    total = len(query_packets(tmp_path, [out], "")[0])
    assert total == len(list(read_pcap(pcap)))


def test_flows(tmp_path, captures):
    _, dirs = captures
    p = subprocess.run([str(QUERY), "--dir", str(dirs[0]), "--flows", "udp and host 172.16.3.9"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    flows = [json.loads(l) for l in p.stdout.splitlines()]
    # Only stream 2 has that host, sending to one port of eight servers: a
    # flow per server, one way.
    want = reference(tmp_path, [dirs[0]], "udp and host 172.16.3.9")
    assert want and 1 < len(flows) <= 8, flows
    for f in flows:
        assert (f["proto"], f["src"], f["sport"], f["dport"]) == (17, "172.16.3.9", 7003, 9000)
        mine = [w for w in want if w[2][30:34] == bytes(map(int, f["dst"].split(".")))]
        assert f["packets_src_to_dst"] == len(mine) and f["packets_dst_to_src"] == 0
        assert f["bytes_src_to_dst"] == sum(w[1] for w in mine)
        assert f["first"].endswith(f".{mine[0][0] % 10**9:09d}Z")
        assert f["last"].endswith(f".{mine[-1][0] % 10**9:09d}Z")
    assert sum(f["packets_src_to_dst"] for f in flows) == len(want)
    assert [f["first"] for f in flows] == sorted(f["first"] for f in flows)
    # Every IP packet of a query is in exactly one flow; both ways are counted.
    p = subprocess.run([str(QUERY), "--dir", str(dirs[0]), "--stream", "1", "--flows", "tcp"],
                       capture_output=True, text=True, timeout=60)
    flows = [json.loads(l) for l in p.stdout.splitlines()]
    assert sum(f["packets_src_to_dst"] + f["packets_dst_to_src"] for f in flows) == \
        len(reference(tmp_path, [dirs[0]], "tcp", streams={1}))
    assert any(f["packets_dst_to_src"] for f in flows)


@pytest.mark.parametrize("args,message", [
    (["--", "host and"], "bad filter 'host and'"),
    (["--", "port 99999"], "bad filter 'port 99999'"),
    (["--from", "yesterday"], "--from 'yesterday' is not a time"),
    (["--to", "2024-02-30T00:00:00Z"], "--to '2024-02-30T00:00:00Z' is not a time"),
    (["--from", "2024-05-14T14:02:00"], "is not a time"),  # no offset: ambiguous
    (["--from", "1715695320.1234567891"], "is not a time"),
    (["--from", "1715695320", "--to", "1715695320"], "nothing lies between them"),
    (["--bogus"], "unknown option '--bogus'"),
])
def test_bad_filter_or_time_exits_2_naming_the_problem(tmp_path, args, message):
    p = subprocess.run([str(QUERY), "--dir", str(tmp_path), "-w", str(tmp_path / "x")] + args,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_missing_directory_exits_1(tmp_path):
    p = subprocess.run([str(QUERY), "--dir", str(tmp_path / "nope"), "-w", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot read" in p.stderr, p.stderr


def test_output_keeps_interfaces_and_nanoseconds(tmp_path, captures):
    _, dirs = captures
    out = tmp_path / "o.pcapng"
    query(dirs, "--stream", "1", "--", "udp", out=out)
    pk = read_pcapng(out)  # strict: if_tsresol 9, sluice interface names
    assert pk and {(p["port"], p["queue"]) for p in pk} == {(0, 0), (0, 1)}
    info = subprocess.run(["capinfos", "-T", "-r", str(out)], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
