"""sluice-pcapgen: the traffic it writes is well formed, realistic and
reproducible, judged by Wireshark's own dissectors (tshark, capinfos)."""
import hashlib
import struct
import subprocess
from collections import Counter

import pytest

from conftest import read_pcap

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


# ---- reproducibility -------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(pcapgen):
    opts = dict(packets=3000, jumbo_percent=2, truncate_percent=2, ipv6_percent=25)
    a = pcapgen("a.pcap", seed=42, **opts)
    b = pcapgen("b.pcap", seed=42, **opts)
    c = pcapgen("c.pcap", seed=43, **opts)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    # Not only a different header: most records differ.
    same = sum(x[4] == y[4] for x, y in zip(read_pcap(a), read_pcap(c)))
    assert same < 100
