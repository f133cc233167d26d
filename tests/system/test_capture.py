"""What the field captures, end to end: generated traffic in every tunnel sluice
peels, with cut tunnel headers, SPAN copies and slice rules, through sluice on
net_pcap -> TCP -> sluice-collector -> pcapng, judged by Wireshark's tools and
by the bytes. And the drops in the files: Interface Statistics Blocks with
sluice's counters, one per interface at the end of each file."""
import json
import signal
import struct
import subprocess
import textwrap
import time

from collector_helpers import Collector, output_files, parse_options, read_stream
from conftest import BUILD, EAL, Running, read_pcap, run_sluice, write_config
from test_pcapgen import bad_packets, decapsulate, fields, ip_length


def sluice_config(pcap, port, summary, extra=""):
    # Hardware timestamps on net_pcap: each packet keeps its pcap record's time.
    return textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_pcap={pcap}"
        mtu = 9000
        timestamps = "hardware"
        [lcores]
        rx = [1]
        [egress]
        type = "tcp"
        address = "127.0.0.1:{port}"
        reconnect_min_ms = 50
        reconnect_max_ms = 400
        [stats]
        interval_s = 0
        summary_json = "{summary}"
        """) + textwrap.dedent(extra)


def capture(tmp_path, pcap, extra, collector_args=()):
    """sluice on `pcap` to a collector; returns (packets written, sluice's summary, out)."""
    out = tmp_path / "out"
    col = Collector(out, args=list(collector_args))
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary, extra))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--idle-timeout", "1.5"], timeout=120)
    assert r.returncode == 0, r.stderr
    col.stop()
    return read_stream(out, 1), json.loads(summary.read_text()), out


def frames(pcap):
    return [r[4] for r in read_pcap(pcap)]


def files_of(out):
    return output_files(out, 1)


MIX = dict(packets=3000, ipv6_percent=20, jumbo_percent=2)
QUERY = BUILD / "tools" / "sluice-query"


# ---- decap -----------------------------------------------------------------------------

def test_strip_writes_the_inner_packet_of_every_tunnel(tmp_path, pcapgen):
    wrapped = pcapgen("mix.pcap", tunnel="mix", seed=51, **MIX)
    plain = frames(pcapgen("plain.pcap", seed=51, **MIX))
    got, s, out = capture(tmp_path, wrapped, '[capture]\ndecap = "strip"\n')
    outer = frames(wrapped)
    assert len(got) == len(outer) == len(plain)
    kinds = {}
    for i, (g, o, p) in enumerate(zip(got, outer, plain)):
        kind = decapsulate(o)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind in ("gre", "gre-key", "mpls"):
            # The datagram under the outer MACs and its own EtherType.
            assert g["data"][:12] == o[:12], f"packet {i} ({kind})"
            assert g["data"][12:14] == p[12:14], f"packet {i} ({kind})"
            n = ip_length(p)
            assert g["data"][14:14 + n] == p[14:14 + n], f"packet {i} ({kind})"
        else:
            assert g["data"] == p, f"packet {i} ({kind})"
        assert g["orig_len"] == len(g["data"])
    assert len(kinds) == 9, kinds
    assert s["totals"]["queue"]["decapsulated"] == len(outer)
    assert s["totals"]["queue"]["tunnel_truncated"] == 0
    (f,) = files_of(out)
    assert bad_packets(f) == []
    # ERSPAN's session and timestamp, in the packet comments; type III's
    # direction in the packet flags.
    rows = fields(f, "frame.comment", "frame.packet_flags_direction")
    comments = [r[0] for r in rows]
    assert sum(c.startswith("ERSPAN type II session") for c in comments) == kinds["erspan2"]
    assert sum(c.startswith("ERSPAN type III session") for c in comments) == kinds["erspan3"]
    assert all(d in ("0x00000001", "0x00000002", "1", "2")
               for c, d in rows if c.startswith("ERSPAN type III"))


def test_match_filters_on_the_inner_packet_and_writes_it_whole(tmp_path, pcapgen):
    wrapped = pcapgen("mix.pcap", tunnel="mix", seed=52, **MIX)
    plain = pcapgen("plain.pcap", seed=52, **MIX)
    https = [int(r[0]) - 1 for r in fields(plain, "frame.number",
                                           display_filter="tcp.port == 443")]
    assert len(https) > 300
    got, s, out = capture(tmp_path, wrapped,
                          '[capture]\ndecap = "match"\nfilter = "tcp port 443"\n')
    outer = frames(wrapped)
    assert [g["data"] for g in got] == [outer[i] for i in https]
    assert s["totals"]["queue"]["filtered"] == len(outer) - len(https)
    (f,) = files_of(out)
    assert bad_packets(f) == []
    # Wireshark finds the same packets by their inner port.
    assert len(fields(f, "frame.number", display_filter="tcp.port == 443")) == len(https)
    # So does sluice-query, through the index's inner keys, with --inner; the
    # outer headers alone match none of them.
    inner = tmp_path / "inner.pcapng"
    subprocess.run([str(QUERY), "--dir", str(out), "-w", str(inner), "--inner", "tcp port 443"],
                   check=True, capture_output=True)
    assert len(fields(inner, "frame.number")) == len(https)
    plain_filter = tmp_path / "outer.pcapng"
    subprocess.run([str(QUERY), "--dir", str(out), "-w", str(plain_filter), "tcp port 443"],
                   check=True, capture_output=True)
    assert fields(plain_filter, "frame.number") == []


def test_truncated_tunnels_are_counted_and_written_as_they_arrived(tmp_path, pcapgen):
    wrapped = pcapgen("cut.pcap", tunnel="mix", seed=53, truncate_tunnel_percent=20, **MIX)
    records = list(read_pcap(wrapped))
    # sluice-pcapgen cuts only tunnel headers here: a record shorter than its
    # packet ends inside one (or, for a VLAN tag, before the EtherType that
    # would say so: no tunnel to count).
    cut = [i for i, r in enumerate(records) if 14 <= r[2] < r[3]]
    runts = [i for i, r in enumerate(records) if r[2] < 14]
    assert len(cut) > 300
    got, s, out = capture(tmp_path, wrapped, '[capture]\ndecap = "strip"\n')
    assert len(got) == len(records)
    for i in cut + runts:
        assert got[i]["data"] == records[i][4], f"packet {i}"
        # net_pcap delivers a record's captured bytes as the whole packet.
        assert got[i]["orig_len"] == records[i][2]
    assert s["totals"]["queue"]["tunnel_truncated"] == len(cut)
    assert s["totals"]["queue"]["decapsulated"] == len(records) - len(cut) - len(runts)


# ---- dedup and slices ----------------------------------------------------------------

def test_dedup_drops_the_copies_a_span_port_delivers(tmp_path, pcapgen):
    opts = dict(packets=4000, seed=54, ipv6_percent=20)
    dup = pcapgen("dup.pcap", duplicate_percent=15, duplicate_ttl_change=True, **opts)
    plain = frames(pcapgen("plain.pcap", **opts))
    got, s, _ = capture(tmp_path, dup, "[capture]\ndedup = true\ndedup_window_us = 10000000\n")
    assert 3300 < len(got) < 3700
    assert [g["data"] for g in got] == plain[:len(got)]
    assert s["totals"]["queue"]["deduplicated"] == 4000 - len(got)


def transport(frame):
    """(protocol, source port, destination port) of a plain Ethernet frame's IP packet."""
    et = struct.unpack_from("!H", frame, 12)[0]
    if et == 0x0800:
        proto, l4 = frame[23], 14 + 4 * (frame[14] & 15)
    elif et == 0x86DD:
        proto, l4 = frame[20], 54
    else:
        return None, 0, 0
    if proto not in (6, 17) or len(frame) < l4 + 4:
        return proto, 0, 0
    return (proto,) + struct.unpack_from("!HH", frame, l4)


def test_slice_rules_cut_what_they_match_and_wireshark_sees_both_lengths(tmp_path, pcapgen):
    pcap = pcapgen(packets=3000, seed=55, jumbo_percent=3, ipv6_percent=20)
    got, s, out = capture(tmp_path, pcap, """
        [capture]
        snaplen = 100
        [[capture.slice]]
        filter = "tcp port 443"
        snaplen = 128
        [[capture.slice]]
        filter = "tcp"
        snaplen = 64
        [[capture.slice]]
        filter = "udp port 53"
        snaplen = 65535
        """)
    want, sliced = [], 0
    for f in frames(pcap):
        proto, sport, dport = transport(f)
        snap = 100
        if proto == 6:
            snap = 128 if 443 in (sport, dport) else 64
        elif proto == 17 and 53 in (sport, dport):
            snap = 65535
        sliced += snap != 100
        want.append((min(len(f), snap), len(f)))
    assert sum(1 for c, n in want if n > 100 and c == n) > 20, "no DNS kept whole"
    (f,) = files_of(out)
    rows = fields(f, "frame.cap_len", "frame.len")
    assert [(int(a), int(b)) for a, b in rows] == want
    assert [(len(g["data"]), g["orig_len"]) for g in got] == want
    assert s["totals"]["queue"]["sliced"] == sliced
    assert s["totals"]["queue"]["truncated"] == sum(1 for c, n in want if c < n)


# ---- drops in the files ----------------------------------------------------------------

def statistics_blocks(path):
    """{interface id: [ISB options by code]} and the IDB descriptions of one pcapng file."""
    raw = path.read_bytes()
    off, isbs, descriptions = 0, {}, []
    while off < len(raw):
        btype, blen = struct.unpack_from("<II", raw, off)
        body = raw[off + 8:off + blen - 4]
        if btype == 1:
            descriptions.append(parse_options(body[8:]).get(3, b"").decode())
        elif btype == 5:
            ifid = struct.unpack_from("<I", body, 0)[0]
            opts = parse_options(body[12:])
            isbs.setdefault(ifid, []).append(
                {k: (struct.unpack("<Q", v)[0] if k in range(4, 9) else v)
                 for k, v in opts.items()})
        off += blen
    return isbs, descriptions


def test_statistics_blocks_carry_the_drops_capinfos_counts_one_per_file(tmp_path, pcapgen):
    # The collector is frozen (SIGSTOP) while sluice captures: the retransmit
    # buffer fills and the rest is dropped and counted; the collector rotates
    # small files, each closed by its interface's statistics.
    pcap = pcapgen(packets=20000, seed=56)
    out = tmp_path / "out"
    col = Collector(out, args=["--rotate-size", "262144"])
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary, """
        [mempool]
        frame_buffers = 16
        [batch]
        frame_size = 65536
        """))
    col.proc.send_signal(signal.SIGSTOP)
    try:
        sluice = Running(EAL + ["--", "--config", str(cfg), "--idle-timeout", "2",
                                "--set", "egress.retransmit_frames=8",
                                "--set", "egress.timeout_ms=1000"], timeout=60)
        time.sleep(3)
    finally:
        col.proc.send_signal(signal.SIGCONT)
    rc = sluice.proc.wait(timeout=120)
    _, err = sluice.proc.communicate()
    assert rc == 0, "".join(sluice.stderr_lines) + err
    col.stop()
    s = json.loads(summary.read_text())
    q = s["totals"]["queue"]
    assert s["dropped"] > 0, "the collector was never too slow"
    files = files_of(out)
    assert len(files) > 2
    for f in files:
        isbs, descriptions = statistics_blocks(f)
        assert descriptions == [f"sluice stream 1 port 0 queue 0: net_pcap0,rx_pcap={pcap} "
                                "(net_pcap)"]
        assert list(isbs) == [0] and len(isbs[0]) == 1, f"{f.name}: {isbs}"
        info = subprocess.run(["capinfos", str(f)], capture_output=True, text=True,
                              check=True).stdout
        assert "Number of stat entries = 1" in info, info
        assert "net_pcap0" in info
    # The last file ends with the final counters: what the sender's summary says.
    final = statistics_blocks(files[-1])[0][0][0]
    nic = s["ports"][0]["imissed"] + s["ports"][0]["rx_nombuf"]
    assert final[7] == s["dropped"]                     # isb_osdrop: sluice's drops
    assert final[5] == nic + s["dropped"]               # isb_ifdrop: all of them
    assert final[4] == q["rx_packets"] + nic            # isb_ifrecv
    assert final[6] == q["rx_packets"] - q["filtered"]  # isb_filteraccept
    assert final[8] == q["captured"]                    # isb_usrdeliv
    assert final[1].decode().startswith(f"sluice: {q['rx_packets']} packets received")
    # Every packet is either in a file or among those counted as dropped.
    written = len(read_stream(out, 1))
    assert 20000 == written + s["dropped"]


# ---- configuration and ports -----------------------------------------------------------

def test_hardware_timestamps_on_a_port_without_them_is_refused_naming_it(tmp_path):
    cfg = write_config(tmp_path, textwrap.dedent("""\
        [[ports]]
        name = "net_null0"
        timestamps = "hardware"
        [lcores]
        rx = [1]
        [egress]
        type = "null"
        """))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--duration", "1"], timeout=60)
    assert r.returncode != 0
    assert "port 'net_null0' (net_null) offers no hardware RX timestamps" in r.stderr
    assert 'timestamps = "software"' in r.stderr


def test_check_config_names_a_bad_slice_rule(tmp_path):
    cfg = write_config(tmp_path, textwrap.dedent("""\
        [[ports]]
        name = "net_null0"
        [capture]
        decap = "strp"
        [[capture.slice]]
        filter = "tcp port"
        snaplen = 128
        [[capture.slice]]
        filter = "udp"
        """))
    r = run_sluice(["--check-config", str(cfg)])
    assert r.returncode != 0
    assert 'capture.decap: expected one of "none", "match", "strip", found "strp" ' \
           '(did you mean "strip"?)' in r.stderr
    assert "capture.slice[0].filter: not a valid tcpdump expression" in r.stderr
    assert "capture.slice[1].snaplen: missing: this key is required" in r.stderr
