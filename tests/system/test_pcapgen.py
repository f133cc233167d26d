"""sluice-pcapgen: the traffic it writes is well formed, realistic and
reproducible, judged by Wireshark's own dissectors (tshark, capinfos)."""
import hashlib
import struct
import subprocess
from collections import Counter

import pytest

from conftest import PCAPGEN, read_pcap

# What Wireshark calls a broken packet: a dissector exception or an expert
# item of error severity (bad checksum when checked, impossible length, ...).
BAD = "_ws.malformed || _ws.expert.severity >= error"


def tshark(path, *args):
    p = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True,
                       text=True, check=True)
    return p.stdout


def count(path, display_filter):
    return len(tshark(path, "-Y", display_filter).splitlines())


def fields(path, *names, display_filter=None):
    args = ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    for n in names:
        args += ["-e", n]
    if display_filter:
        args += ["-Y", display_filter]
    return [line.split("|") for line in tshark(path, *args).splitlines()]


def bad_packets(path, display_filter=None):
    flt = f"({BAD}) && ({display_filter})" if display_filter else BAD
    return tshark(path, "-Y", flt).splitlines()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the default traffic ---------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 7])
def test_default_traffic_has_no_malformed_packet(pcapgen, seed):
    pcap = pcapgen(packets=10000, seed=seed, jumbo_percent=3, ipv6_percent=30)
    assert bad_packets(pcap) == []
    # ... and the protocols it is meant to hold are really there, dissected.
    for proto in ("http.request", "http.response", "tls.record", "dns.flags.response == 0",
                  "dns.flags.response == 1", "ipv6", "ip"):
        assert count(pcap, proto) > 0, proto


def test_every_dns_datagram_is_one_whole_message(pcapgen):
    pcap = pcapgen(packets=6000, seed=3, jumbo_percent=3, ipv6_percent=30)
    dns = count(pcap, "udp.port == 53")
    assert dns > 300
    assert count(pcap, "dns") == dns
    # No bytes after the last record, no record cut short.
    assert count(pcap, '_ws.expert.group == "Undecoded" || _ws.expert.group == "Malformed"') == 0
    # The counts in the header match the records Wireshark found.
    rows = fields(pcap, "dns.count.answers", "dns.resp.type", "dns.count.add_rr", "dns.resp.len",
                  display_filter="dns.flags.response == 1")
    txt = 0
    for answers, types, additional, lengths in rows:
        got = [t for t in types.split(",") if t]
        assert len(got) == int(answers) + int(additional), (answers, additional, types)
        txt += "16" in got
    assert txt > 0 and txt < len(rows)  # large answers are TXT, small ones A/AAAA


def tcp_streams(pcap):
    """Each TCP direction's bytes, in order: {(src, sport, dst, dport): bytes}.
    Fails if a direction skips or repeats sequence numbers."""
    streams, next_seq = {}, {}
    for *_, data in read_pcap(pcap):
        ethertype = struct.unpack_from("!H", data, 12)[0]
        if ethertype == 0x0800:
            ihl = (data[14] & 15) * 4
            total, proto = struct.unpack_from("!H", data, 16)[0], data[23]
            src, dst, l4, end = data[26:30], data[30:34], 14 + ihl, 14 + total
        elif ethertype == 0x86DD:
            plen, proto = struct.unpack_from("!HB", data, 18)
            src, dst, l4, end = data[22:38], data[38:54], 54, 54 + plen
        else:
            continue
        if proto != 6:
            continue
        sport, dport, seq = struct.unpack_from("!HHI", data, l4)
        payload = data[l4 + (data[l4 + 12] >> 4) * 4:end]
        key = (src, sport, dst, dport)
        if key in next_seq:
            assert seq == next_seq[key], f"{key}: segment at {seq}, expected {next_seq[key]}"
        next_seq[key] = (seq + len(payload)) & 0xFFFFFFFF
        streams.setdefault(key, bytearray()).extend(payload)
    return streams


def http_messages(stream, starts):
    """Splits a direction into HTTP messages; returns how many were whole.
    Every message must begin with one of `starts` and carry exactly its
    Content-Length."""
    whole, off = 0, 0
    while off < len(stream):
        assert any(stream.startswith(s, off) for s in starts), stream[off:off + 40]
        end = stream.find(b"\r\n\r\n", off)
        if end < 0:
            break  # the capture ended inside the headers
        head = stream[off:end].decode()
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            assert value, line
            if name.lower() == "content-length":
                length = int(value)
        off = end + 4 + length
        whole += off <= len(stream)
    return whole


def test_http_directions_are_whole_messages(pcapgen):
    pcap = pcapgen(packets=10000, seed=4, ipv6_percent=20)
    requests = responses = 0
    for (_, sport, _, dport), data in tcp_streams(pcap).items():
        if dport in (80, 8080):
            requests += http_messages(data, (b"GET ", b"POST "))
        elif sport in (80, 8080):
            responses += http_messages(data, (b"HTTP/1.1 ",))
    assert requests > 100 and responses > 50
    # Wireshark agrees: every HTTP PDU is a request or a response, and there are
    # as many as the streams hold whole.
    assert count(pcap, "http && !(http.request || http.response)") == 0
    assert count(pcap, "http.request") == requests
    assert count(pcap, "http.response") == responses


def tls_records(stream):
    """Splits a direction into TLS records; returns how many were whole."""
    whole, off = 0, 0
    while off + 5 <= len(stream):
        content_type, version, length = struct.unpack_from("!BHH", stream, off)
        assert (content_type, version) == (23, 0x0303), stream[off:off + 5]
        assert 0 < length <= 16384 + 256
        off += 5 + length
        whole += off <= len(stream)
    return whole


def test_tls_on_443_is_application_data_records(pcapgen):
    pcap = pcapgen(packets=10000, seed=5)
    records = sum(tls_records(data) for (_, sport, _, dport), data in tcp_streams(pcap).items()
                  if 443 in (sport, dport))
    assert records > 50
    rows = fields(pcap, "tls.record.content_type", "tls.record.version",
                  display_filter="tls.record")
    assert {t for types, _ in rows for t in types.split(",")} == {"23"}
    assert {v for _, versions in rows for v in versions.split(",")} == {"0x0303"}
    assert sum(len(types.split(",")) for types, _ in rows) == records
    assert count(pcap, "tcp.port == 443 && data") == 0


def test_sizes_are_imix_like(pcapgen):
    pcap = pcapgen(packets=10000, seed=6, jumbo_percent=2)
    lens = [origlen for *_, origlen, _ in read_pcap(pcap)]
    small = sum(n <= 66 for n in lens)
    medium = sum(590 <= n < 1514 for n in lens)
    full = sum(n == 1514 for n in lens)
    jumbo = sum(n >= 9000 for n in lens)
    assert min(lens) == 60  # pure ACKs, padded to the Ethernet minimum
    assert small > 0.35 * len(lens)
    assert medium > 0.15 * len(lens)
    assert full > 0.03 * len(lens)
    assert 0.01 * len(lens) < jumbo < 0.03 * len(lens)


def test_capinfos_counts_the_records_asked_for(pcapgen):
    pcap = pcapgen(packets=1234, seed=8, nanosecond=True)
    out = subprocess.run(["capinfos", "-M", "-c", "-t", "-E", str(pcap)], capture_output=True,
                         text=True, check=True).stdout
    assert "Number of packets:   1234" in out
    assert "File type:           nsecpcap" in out
    assert "File encapsulation:  ether" in out
    assert len(list(read_pcap(pcap))) == 1234


def test_help_names_every_option():
    text = subprocess.run([str(PCAPGEN), "--help"], capture_output=True, text=True,
                          check=True).stdout
    options = ["--out", "--packets", "--flows", "--seed", "--jumbo-percent", "--truncate-percent",
               "--ipv6-percent", "--rate", "--nanosecond", "--tunnel", "--tunnel-percent",
               "--truncate-tunnel-percent", "--duplicate-percent", "--duplicate-window",
               "--duplicate-ttl-change", "--fragment-percent"]
    for option in options:
        assert f"{option} " in text, option
    for name in TUNNEL_LAYERS:
        assert name in text, name
    bad = subprocess.run([str(PCAPGEN), "--out", "/dev/null", "--tunnel", "nonsense"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown tunnel 'nonsense'" in bad.stderr


# ---- reproducibility -------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(pcapgen):
    opts = dict(packets=3000, jumbo_percent=2, truncate_percent=2, ipv6_percent=25,
                tunnel="mix", tunnel_percent=80, truncate_tunnel_percent=3,
                duplicate_percent=5, duplicate_ttl_change=True, fragment_percent=10)
    a = pcapgen("a.pcap", seed=42, **opts)
    b = pcapgen("b.pcap", seed=42, **opts)
    c = pcapgen("c.pcap", seed=43, **opts)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    # Not only a different header: most records differ.
    same = sum(x[4] == y[4] for x, y in zip(read_pcap(a), read_pcap(c)))
    assert same < 100


# ---- tunnels ---------------------------------------------------------------------------

CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
             "-o", "tcp.check_checksum:TRUE"]
BAD_CHECKSUM = ('ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || '
                'tcp.checksum.status == "Bad"')

# What Wireshark names the layers of each tunnel, outermost first, up to the inner IP.
TUNNEL_LAYERS = {
    "erspan2": "eth:ethertype:ip:gre:erspan:eth:ethertype:",
    "erspan3": "eth:ethertype:ip:gre:erspan:eth:ethertype:",
    "gre": "eth:ethertype:ip:gre:",
    "gre-key": "eth:ethertype:ip:gre:",
    "vxlan": "eth:ethertype:ip:udp:vxlan:eth:ethertype:",
    "geneve": "eth:ethertype:ip:udp:geneve:eth:ethertype:",
    "mpls": "eth:ethertype:mpls:",
    "vlan": "eth:ethertype:vlan:ethertype:",
    "qinq": "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:",
}


def ip_length(frame, off=14):
    """The IP datagram's length at `off`, from its own header."""
    if frame[off] >> 4 == 6:
        return 40 + struct.unpack_from("!H", frame, off + 4)[0]
    return struct.unpack_from("!H", frame, off + 2)[0]


def decapsulate(frame):
    """Reads a tunnelled frame: (kind, tunnel header begin, end, inner packet).
    The inner packet is an Ethernet frame, or an IP datagram for GRE and MPLS."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x8100:
        return "vlan", 12, 18, frame[:12] + frame[16:]
    if ethertype == 0x88A8:
        assert struct.unpack_from("!H", frame, 16)[0] == 0x8100
        return "qinq", 12, 22, frame[:12] + frame[20:]
    if ethertype == 0x8847:
        off = 14
        while not frame[off + 2] & 1:
            off += 4
        off += 4
        return "mpls", 14, off, frame[off:off + ip_length(frame, off)]
    assert ethertype == 0x0800 and frame[14] == 0x45
    assert ip_length(frame) == len(frame) - 14
    if frame[23] == 47:
        flags, proto = struct.unpack_from("!HH", frame, 34)
        off = 38 + (4 if flags & 0x2000 else 0) + (4 if flags & 0x1000 else 0)
        if proto == 0x88BE:
            return "erspan2", 34, off + 8, frame[off + 8:]
        if proto == 0x22EB:
            return "erspan3", 34, off + 12, frame[off + 12:]
        kind = "gre-key" if flags & 0x2000 else "gre"
        return kind, 34, off, frame[off:off + ip_length(frame, off)]
    assert frame[23] == 17
    sport, dport, length = struct.unpack_from("!HHH", frame, 34)
    assert length == len(frame) - 34
    if dport == 4789:
        return "vxlan", 42, 50, frame[50:]
    assert dport == 6081 and struct.unpack_from("!H", frame, 44)[0] == 0x6558
    end = 50 + 4 * (frame[42] & 0x3F)
    return "geneve", 42, end, frame[end:]


def inner_of(kind, plain):
    """What the tunnel must carry of an unwrapped frame."""
    return plain[14:14 + ip_length(plain)] if kind in ("gre", "gre-key", "mpls") else plain


@pytest.mark.parametrize("kind", list(TUNNEL_LAYERS))
def test_tunnel_carries_the_same_traffic_and_wireshark_decodes_it(pcapgen, kind):
    opts = dict(packets=3000, seed=21, ipv6_percent=30, jumbo_percent=2)
    pcap = pcapgen("tunnel.pcap", tunnel=kind, **opts)
    plain = pcapgen("plain.pcap", **opts)
    assert tshark(pcap, *CHECKSUMS, "-Y", f"{BAD} || {BAD_CHECKSUM}") == ""
    layers = TUNNEL_LAYERS[kind]
    protocols = [r[0] for r in fields(pcap, "frame.protocols")]
    assert len(protocols) == 3000
    for p in protocols:
        assert p.startswith(layers), p
        assert p[len(layers):].split(":")[:2] in (["ip", "tcp"], ["ip", "udp"],
                                                   ["ipv6", "tcp"], ["ipv6", "udp"]), p
    # The applications inside are dissected as without the tunnel.
    for proto in ("http.request", "tls.record", "dns"):
        assert count(pcap, proto) == count(plain, proto), proto
    # Turning the tunnel on changes nothing inside it, nor the timestamps.
    for t, p in zip(read_pcap(pcap), read_pcap(plain)):
        assert t[:2] == p[:2]
        got_kind, _, _, inner = decapsulate(t[4])
        assert got_kind == kind
        assert inner == inner_of(kind, p[4])


def test_gre_key_and_sequence_numbers(pcapgen):
    assert count(pcapgen("gre.pcap", packets=500, tunnel="gre"), "gre.key") == 0
    pcap = pcapgen("key.pcap", packets=2000, tunnel="gre-key", seed=5)
    assert count(pcap, "gre.key") == 2000
    # Where a tunnel numbers its packets, it does so one by one.
    last = {}
    for key, seq in fields(pcap, "gre.key", "gre.sequence_number",
                           display_filter="gre.sequence_number"):
        if key in last:
            assert int(seq) == last[key] + 1
        last[key] = int(seq)
    assert last


@pytest.mark.parametrize("kind,version", [("erspan2", "1"), ("erspan3", "2")])
def test_erspan_sessions(pcapgen, kind, version):
    pcap = pcapgen(packets=2000, tunnel=kind, seed=6, nanosecond=True)
    rows = fields(pcap, "frame.time_epoch", "erspan.version", "erspan.spanid",
                  "gre.sequence_number", "erspan.timestamp", "erspan.gra")
    assert len(rows) == 2000
    last = {}
    for when, ver, session, seq, timestamp, gra in rows:
        assert ver == version
        assert 0 < int(session) < 1024
        if session in last:
            assert int(seq) == last[session] + 1
        last[session] = int(seq)
        if kind == "erspan3":
            # The mirror's clock: the capture time in 100 us or 100 ns ticks.
            sec, ns = when.split(".")
            t_ns = int(sec) * 10**9 + int(ns)
            tick = {"0": 100_000, "1": 100}[gra]
            assert int(timestamp) == (t_ns // tick) % 2**32
        else:
            assert timestamp == ""
    assert len(last) > 1


def test_mpls_label_stacks(pcapgen):
    pcap = pcapgen(packets=2000, tunnel="mpls", seed=2)
    depths = Counter()
    for labels, bottoms in fields(pcap, "mpls.label", "mpls.bottom"):
        labels, bottoms = labels.split(","), bottoms.split(",")
        assert all(int(l) >= 16 for l in labels)
        assert bottoms == ["0"] * (len(bottoms) - 1) + ["1"]
        depths[len(labels)] += 1
    assert set(depths) <= {1, 2, 3} and len(depths) >= 2


def test_mix_spreads_flows_over_every_tunnel_and_percent_leaves_some_plain(pcapgen):
    pcap = pcapgen(packets=6000, tunnel="mix", tunnel_percent=60, seed=9)
    kinds = Counter()
    for *_, data in read_pcap(pcap):
        ethertype = struct.unpack_from("!H", data, 12)[0]
        plain = ethertype == 0x86DD or (ethertype == 0x0800 and data[23] in (6, 17) and
                                        struct.unpack_from("!H", data, 36)[0] not in (4789, 6081))
        kinds["plain" if plain else decapsulate(data)[0]] += 1
    assert set(kinds) == set(TUNNEL_LAYERS) | {"plain"}
    assert 0.3 * 6000 < kinds["plain"] < 0.5 * 6000
    assert bad_packets(pcap) == []


def test_truncated_tunnels_end_inside_the_tunnel_header(pcapgen):
    opts = dict(packets=4000, tunnel="mix", seed=12, ipv6_percent=20)
    whole = list(read_pcap(pcapgen("whole.pcap", **opts)))
    pcap = pcapgen("cut.pcap", truncate_tunnel_percent=15, **opts)
    cut = 0
    for w, c in zip(whole, read_pcap(pcap)):
        _, _, caplen, origlen, data = c
        assert origlen == w[3] and data == w[4][:caplen]  # the same packet, maybe shorter
        if caplen < origlen:
            cut += 1
            _, begin, end, _ = decapsulate(w[4])
            assert begin < caplen < end
    assert 0.12 * 4000 < cut < 0.18 * 4000
    # Wireshark finds those cut short, and nothing wrong with the others.
    assert count(pcap, "_ws.short") == cut
    assert bad_packets(pcap, "frame.cap_len == frame.len") == []


# ---- duplicates ------------------------------------------------------------------------

def ttl_offset(frame):
    return 14 + 7 if frame[12:14] == b"\x86\xdd" else 14 + 8


def without_ttl(frame):
    """The frame with its TTL (hop limit) and IPv4 header checksum blanked."""
    f = bytearray(frame)
    f[ttl_offset(frame)] = 0
    if frame[12:14] == b"\x08\x00":
        f[24:26] = b"\0\0"
    return bytes(f)


def split_copies(frames, window, key=bytes):
    """(originals, [(original index, copy index)]): a copy is a frame whose key
    matches an original at most `window` records earlier."""
    originals, copies, where = [], [], {}
    for i, frame in enumerate(frames):
        j = where.get(key(frame))
        if j is not None and i - j <= window:
            copies.append((j, i))
            del where[key(frame)]  # one copy per packet
        else:
            originals.append(frame)
            where[key(frame)] = i
    return originals, copies


def test_duplicates_are_identical_copies_within_the_window(pcapgen):
    opts = dict(packets=5000, seed=14, ipv6_percent=20)
    pcap = pcapgen("dup.pcap", duplicate_percent=10, duplicate_window=6, **opts)
    records = list(read_pcap(pcap))
    plain = [r[4] for r in read_pcap(pcapgen("plain.pcap", **opts))]
    frames = [r[4] for r in records]
    originals, copies = split_copies(frames, 6)
    # Without the copies, the traffic is what it is without the option.
    assert originals == plain[:len(originals)]
    assert 0.08 * len(originals) < len(copies) < 0.12 * len(originals)
    assert {i - j for j, i in copies} == set(range(1, 7))
    # Later than the original, as a second delivery is.
    times = [(r[0], r[1]) for r in records]
    assert all(a < b for a, b in zip(times, times[1:]))
    assert bad_packets(pcap) == []


def test_duplicates_with_ttl_change_are_one_hop_older(pcapgen):
    opts = dict(packets=5000, seed=15, ipv6_percent=30)
    pcap = pcapgen("dup.pcap", duplicate_percent=10, duplicate_ttl_change=True, **opts)
    frames = [r[4] for r in read_pcap(pcap)]
    plain = [r[4] for r in read_pcap(pcapgen("plain.pcap", **opts))]
    originals, copies = split_copies(frames, 8, key=without_ttl)
    assert originals == plain[:len(originals)]
    assert 0.08 * len(originals) < len(copies) < 0.12 * len(originals)
    for j, i in copies:
        a, b = frames[j], frames[i]
        assert b[ttl_offset(a)] == a[ttl_offset(a)] - 1
        assert a != b
    # The copies' IPv4 header checksums are right.
    assert tshark(pcap, *CHECKSUMS, "-Y", f"{BAD} || {BAD_CHECKSUM}") == ""


def test_duplicates_inside_a_tunnel_are_wrapped_again(pcapgen):
    opts = dict(packets=3000, seed=16)
    pcap = pcapgen("dup.pcap", tunnel="erspan3", duplicate_percent=10, **opts)
    outer = [r[4] for r in read_pcap(pcap)]
    inner = [decapsulate(f)[3] for f in outer]
    plain = [r[4] for r in read_pcap(pcapgen("plain.pcap", **opts))]
    originals, copies = split_copies(inner, 8)
    assert originals == plain[:len(originals)]
    assert len(copies) > 200
    # The mirror session numbered the copy as a packet of its own.
    assert all(outer[i] != outer[j] for j, i in copies)
    assert bad_packets(pcap) == []


# ---- fragments -------------------------------------------------------------------------

def reassemble(frames):
    """Puts fragmented datagrams back together, each where its first fragment
    came, checking the fragments as it goes. Returns (frames, [fragments per
    datagram], datagrams whose first record was not their first fragment)."""
    out, partial, counts, out_of_order = [], {}, [], 0
    for frame in frames:
        if frame[12:14] == b"\x08\x00":
            ihl = (frame[14] & 15) * 4
            total, flags = struct.unpack_from("!HxxH", frame, 16)
            more, off = bool(flags & 0x2000), (flags & 0x1FFF) * 8
            if not more and off == 0:
                out.append(frame)
                continue
            assert not flags & 0x4000  # DF and fragments exclude each other
            key = (frame[26:34], frame[18:20], frame[23])
            head, data = frame[:14 + ihl], frame[14 + ihl:14 + total]
        elif frame[12:14] == b"\x86\xdd" and frame[20] == 44:
            length, = struct.unpack_from("!H", frame, 18)
            nxt, _, offset_more, ident = struct.unpack_from("!BBHI", frame, 54)
            more, off = bool(offset_more & 1), offset_more & 0xFFF8
            key = (frame[22:54], ident)
            head = frame[:20] + bytes([nxt]) + frame[21:54]
            data = frame[62:54 + length]
        else:
            out.append(frame)
            continue
        d = partial.setdefault(key, {"slot": len(out), "pieces": {}, "end": None})
        if d["slot"] == len(out):
            out.append(None)
            out_of_order += off != 0
        assert off not in d["pieces"]
        if more:
            assert len(data) % 8 == 0
        else:
            d["end"] = off + len(data)
        d["pieces"][off] = data
        if off == 0:
            d["head"] = head
        if d["end"] is not None and sum(map(len, d["pieces"].values())) == d["end"]:
            payload = b"".join(d["pieces"][o] for o in sorted(d["pieces"]))
            assert len(payload) == d["end"]
            f = bytearray(d["head"] + payload)
            if f[12:14] == b"\x08\x00":
                struct.pack_into("!H", f, 16, len(f) - 14)
            else:
                struct.pack_into("!H", f, 18, len(payload))
            out[d["slot"]] = bytes(f)
            counts.append(len(d["pieces"]))
            del partial[key]
    assert not partial, "fragments left over"
    return out, counts, out_of_order


def ignoring_ipv4_flags(frame):
    """Fragmenting clears DF and changes the header checksum: compare without them."""
    if frame[12:14] != b"\x08\x00":
        return frame
    return frame[:20] + b"\0\0" + frame[22:24] + b"\0\0" + frame[26:]


def ip_payload_length(frame):
    if frame[12:14] == b"\x86\xdd":
        return struct.unpack_from("!H", frame, 18)[0]
    return struct.unpack_from("!H", frame, 16)[0] - (frame[14] & 15) * 4


def test_fragments_reassemble_into_the_packets_they_were_cut_from(pcapgen):
    opts = dict(packets=6000, seed=17, ipv6_percent=30, jumbo_percent=3)
    pcap = pcapgen("frag.pcap", fragment_percent=30, **opts)
    plain = [r[4] for r in read_pcap(pcapgen("plain.pcap", **opts))]
    whole, counts, out_of_order = reassemble([r[4] for r in read_pcap(pcap)])
    assert ([ignoring_ipv4_flags(f) for f in whole] ==
            [ignoring_ipv4_flags(f) for f in plain[:len(whole)]])
    # A share of the datagrams large enough; jumbo ones in MTU-sized pieces.
    large = sum(ip_payload_length(f) >= 256 for f in whole)
    assert 0.25 * large < len(counts) < 0.35 * large
    assert min(counts) == 2 and max(counts) >= 6
    assert 0 < out_of_order < 0.25 * len(counts)
    assert count(pcap, "ip.flags.mf == 1 || ip.frag_offset > 0") > 0
    assert count(pcap, "ipv6.fraghdr") > 0
    # Wireshark puts every one back together, with good checksums.
    assert tshark(pcap, "-2", *CHECKSUMS, "-Y", f"{BAD} || {BAD_CHECKSUM}") == ""
    left = ("((ip.flags.mf == 1 || ip.frag_offset > 0) && !ip.reassembled_in && "
            "!ip.reassembled.length) || "
            "(ipv6.fraghdr && !ipv6.reassembled.in && !ipv6.reassembled.length)")
    assert tshark(pcap, "-2", "-Y", left) == ""
    assert len(tshark(pcap, "-2", "-Y", "ip.reassembled.length || ipv6.reassembled.length")
               .splitlines()) == len(counts)


def test_fragments_inside_tunnels_and_duplicated(pcapgen):
    pcap = pcapgen(packets=6000, seed=18, ipv6_percent=30, jumbo_percent=3, fragment_percent=30,
                   duplicate_percent=10, tunnel="mix")
    assert tshark(pcap, "-2", *CHECKSUMS, "-Y", f"{BAD} || {BAD_CHECKSUM}") == ""
    assert len(tshark(pcap, "-2", "-Y", "ip.reassembled.length || ipv6.reassembled.length")
               .splitlines()) > 100
