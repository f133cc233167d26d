"""The capture pipeline on virtual NICs: exact delivery through frames, both
lcore modes, the filter, jumbo and multi-segment packets, an external DPDK
source over memif, and forced overflow with every drop counted."""
import json
import os
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, EAL, Running, read_pcap, run_sluice, write_config

DECODE = BUILD / "tools" / "sluice-decode"

# lcores on a 2-core machine: main on core 0, stages share core 1 (and 0).
EAL_RTC = ["--lcores", "0@0,1@1"] + EAL[2:]
EAL_PIPE = ["--lcores", "0@0,1@1,2@1,3@0"] + EAL[2:]


def pipeline_config(port, out, mode="run-to-completion", extra=""):
    lcores = ('rx = [1]' if mode == "run-to-completion"
              else 'mode = "pipeline"\nrx = [1]\ncodec = [2]\negress = [3]')
    return textwrap.dedent(f"""\
        [[ports]]
        name = "{port}"
        mtu = 9000
        [lcores]
        {{lcores}}
        [egress]
        type = "file"
        path = "{out}"
        [stats]
        interval_s = 0
        summary_json = "{out}.json"
        """).replace("{lcores}", lcores) + textwrap.dedent(extra)


def decode(frames, pcap_out):
    r = subprocess.run([str(DECODE), str(frames), "--pcap", str(pcap_out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def records(pcap):
    return [(caplen, origlen, data) for _, _, caplen, origlen, data in read_pcap(pcap)]


def run_capture(tmp_path, eal, cfg_text, extra_args=()):
    cfg = write_config(tmp_path, cfg_text)
    r = run_sluice(eal + ["--", "--config", str(cfg), "--idle-timeout", "1.5", "--duration", "120"]
                   + list(extra_args), timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.mark.parametrize("mode,eal", [("run-to-completion", EAL_RTC), ("pipeline", EAL_PIPE)])
@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_exact_delivery_through_frames(tmp_path, pcapgen, mode, eal, codec):
    # Jumbo frames arrive as chains of 2 KB mbufs and must be copied whole.
    # Some records are truncated in the pcap itself: net_pcap delivers only the
    # captured bytes, so that is what sluice sees on the wire.
    pcap = pcapgen(packets=4000, seed=11, jumbo_percent=3, truncate_percent=2)
    frames = tmp_path / "frames.bin"
    run_capture(tmp_path, eal, pipeline_config(f"net_pcap0,rx_pcap={pcap}", frames, mode,
                                               f'[codec]\ntype = "{codec}"\nmin_size = 1024\n'
                                               '[batch]\nframe_size = 65536\n'))
    out = tmp_path / "out.pcap"
    summary = decode(frames, out)
    want = [(c, c, d) for c, _, d in records(pcap)]
    got = records(out)
    assert len(got) == len(want), summary
    assert got == want  # same bytes, same original lengths, same order
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["totals"]["queue"]["captured"] == len(want)
    assert s["dropped"] == 0
    assert "0 sequence gap(s)" in summary
    if codec != "none":
        assert s["totals"]["codec"]["compressed"] > 0


def test_pcap_timestamps_preserved_with_hardware_timestamps(tmp_path, pcapgen):
    # net_pcap hands each record's time (microseconds) to the mbuf's timestamp.
    pcap = pcapgen(packets=500, seed=3)
    frames = tmp_path / "frames.bin"
    cfg = pipeline_config(f"net_pcap0,rx_pcap={pcap}", frames).replace(
        "mtu = 9000", 'mtu = 9000\ntimestamps = "hardware"')
    r = run_capture(tmp_path, EAL_RTC, cfg)
    out = tmp_path / "out.pcap"
    decode(frames, out)
    want = [(s, f * 1000) for s, f, *_ in read_pcap(pcap)]  # microsecond pcap in
    got = [(s, f) for s, f, *_ in read_pcap(out)]         # nanosecond pcap out
    assert "offers no hardware timestamps" not in r.stderr
    assert got == want


def test_filter_keeps_exactly_the_matching_packets(tmp_path, pcapgen):
    pcap = pcapgen(packets=3000, seed=5)
    expr = "tcp port 443 or udp"
    expected = tmp_path / "expected.pcap"
    subprocess.run(["tcpdump", "-r", str(pcap), "-w", str(expected), expr], check=True,
                   capture_output=True)
    frames = tmp_path / "frames.bin"
    run_capture(tmp_path, EAL_RTC, pipeline_config(f"net_pcap0,rx_pcap={pcap}", frames,
                                                   extra=f'[capture]\nfilter = "{expr}"\n'))
    out = tmp_path / "out.pcap"
    decode(frames, out)
    want = records(expected)
    assert 0 < len(want) < 3000
    assert records(out) == want
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["totals"]["queue"]["filtered"] == 3000 - len(want)
    assert s["totals"]["queue"]["captured"] == len(want)


def test_invalid_filter_is_a_config_error_with_libpcaps_message(tmp_path):
    cfg = write_config(tmp_path, '[[ports]]\nname = "net_null0"\n[capture]\nfilter = "tcp prot 80"\n')
    r = run_sluice(["--check-config", str(cfg)])
    assert r.returncode == 2
    assert f"{cfg}:4:10: error: capture.filter: not a valid tcpdump expression: " in r.stderr
    assert "syntax error" in r.stderr


def test_snaplen_cuts_packets_and_keeps_original_length(tmp_path, pcapgen):
    pcap = pcapgen(packets=1000, seed=9)
    frames = tmp_path / "frames.bin"
    run_capture(tmp_path, EAL_RTC, pipeline_config(f"net_pcap0,rx_pcap={pcap}", frames,
                                                   extra="[capture]\nsnaplen = 96\n"))
    out = tmp_path / "out.pcap"
    decode(frames, out)
    want = [(min(c, 96), o, d[:96]) for c, o, d in records(pcap)]
    assert records(out) == want
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["totals"]["queue"]["truncated"] == sum(1 for c, _, _ in records(pcap) if c > 96)


def test_flush_timer_bounds_latency_at_low_rates(tmp_path, pcapgen):
    # 200 small packets never fill a 256 KiB frame: only the timer sends them.
    pcap = pcapgen(packets=200, seed=2)
    frames = tmp_path / "frames.bin"
    run_capture(tmp_path, EAL_RTC, pipeline_config(f"net_pcap0,rx_pcap={pcap}", frames,
                                                   extra="[batch]\nflush_timeout_us = 1000\n"))
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["totals"]["capture"]["flushed_by_timer"] >= 1
    assert s["totals"]["egress"]["packets"] == 200


def test_offered_equals_delivered_plus_drops_under_forced_overflow(tmp_path, pcapgen):
    # Four frame buffers and a slow codec: capture runs out of buffers.
    pcap = pcapgen(packets=20000, seed=13)
    frames = tmp_path / "frames.bin"
    run_capture(tmp_path, EAL_PIPE, pipeline_config(
        f"net_pcap0,rx_pcap={pcap}", frames, "pipeline", """
        [mempool]
        frame_buffers = 4
        [batch]
        frame_size = 16384
        [codec]
        type = "zstd"
        zstd_level = 19
        min_size = 0
        """), ["--set", "egress.retransmit_frames=2"])
    out = tmp_path / "out.pcap"
    decode(frames, out)
    delivered = len(records(out))
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    offered = s["ports"][0]["ipackets"] + s["ports"][0]["imissed"] + s["ports"][0]["rx_nombuf"]
    assert offered == 20000
    assert s["dropped"] > 0, "the overflow was not forced"
    assert offered == delivered + s["dropped"] + s["totals"]["queue"]["filtered"]
    assert s["totals"]["queue"]["frame_pool_empty"] > 0


def test_backpressure_loses_nothing_inside_sluice(tmp_path, pcapgen):
    # The same squeeze with backpressure: the pcap "NIC" just waits.
    pcap = pcapgen(packets=5000, seed=13)
    frames = tmp_path / "frames.bin"
    run_capture(tmp_path, EAL_PIPE, pipeline_config(
        f"net_pcap0,rx_pcap={pcap}", frames, "pipeline", """
        [mempool]
        frame_buffers = 4
        [batch]
        frame_size = 16384
        [codec]
        type = "zstd"
        zstd_level = 19
        min_size = 0
        [capture]
        overflow = "backpressure"
        """), ["--set", "egress.retransmit_frames=2"])
    out = tmp_path / "out.pcap"
    decode(frames, out)
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["dropped"] == 0
    assert records(out) == records(pcap)
    assert s["totals"]["capture"]["rx_paused"] > 0, "backpressure never engaged"


def test_memif_from_testpmd_counts_match(tmp_path, pcapgen):
    """dpdk-testpmd replays a pcap into a memif server port; sluice is the memif
    client. What testpmd says it sent is what sluice received and framed."""
    import re
    pcap = pcapgen(packets=5000, seed=17)
    sock = tmp_path / "memif.sock"
    testpmd = subprocess.Popen(
        ["dpdk-testpmd", "--lcores", "0@1,1@0", "-n", "1", "--in-memory", "--no-pci",
         "--vdev", f"net_pcap0,rx_pcap={pcap}",
         "--vdev", f"net_memif0,role=server,socket={sock},socket-abstract=no,id=0",
         "--", "-i", "--no-flush-rx", "--forward-mode=io", "--total-num-mbufs", "16384"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    frames = tmp_path / "frames.bin"
    cfg = write_config(tmp_path, pipeline_config(
        f"net_memif0,role=client,socket={sock},socket-abstract=no,id=0", frames).replace(
            "mtu = 9000", "mtu = 1500"))
    sluice = None
    # testpmd's output, read as it comes: its prompt ends in no newline.
    printed = []

    def read_testpmd():
        while chunk := os.read(testpmd.stdout.fileno(), 65536):
            printed.append(chunk.decode(errors="replace"))
    reader = threading.Thread(target=read_testpmd, daemon=True)
    reader.start()
    try:
        # Its ports are started when it prompts: the memif socket exists
        # earlier (at probe), and a client connecting then is turned away
        # for good on a slow host.
        deadline = time.time() + 60
        while "testpmd> " not in "".join(printed) and time.time() < deadline:
            time.sleep(0.1)
        assert sock.exists(), "testpmd did not create its memif socket: " + "".join(printed)
        assert "testpmd> " in "".join(printed), "testpmd did not start: " + "".join(printed)
        # The memif client connects when its port starts; sluice logs the link.
        sluice = Running(EAL_RTC + ["--", "--config", str(cfg), "--duration", "120"], timeout=60)
        assert sluice.wait_for("Link up", 30), "".join(sluice.stderr_lines)
        testpmd.stdin.write("start\n")
        testpmd.stdin.flush()
        time.sleep(3)  # net_pcap reads the file once; then it is idle
        testpmd.stdin.write("stop\n")
        testpmd.stdin.flush()
        time.sleep(1)
        # sluice stops before its memif peer goes: DPDK 22.11's memif PMD
        # unmaps the shared rings on disconnect from its interrupt thread,
        # racing a receive burst in progress (docs/operations.md).
        rc, _, s_err = sluice.stop()
        testpmd.stdin.write("quit\n")
        testpmd.stdin.flush()
        testpmd.wait(timeout=60)
        reader.join(timeout=10)
        out = "".join(printed)
        stats = out[out.index("Forward statistics for port 1"):]
        sent = int(re.search(r"TX-packets:\s+(\d+)", stats).group(1))
        assert rc == 0, s_err
    finally:
        if testpmd.poll() is None:
            testpmd.kill()
            testpmd.wait()
        if sluice:
            sluice.kill()
    # testpmd replays faster than one shared core drains the memif ring: what
    # it could not place it counts as TX-dropped; what it placed (TX-packets)
    # is what sluice must have received.
    assert sent > 0, out
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["totals"]["queue"]["rx_packets"] == sent
    pkts = tmp_path / "out.pcap"
    decode(frames, pkts)
    assert len(records(pkts)) == sent


@pytest.mark.parametrize("memory,pages", [(["--in-memory"], "2 MB"),
                                          (["--no-huge", "-m", "512"], "4 KB")])
def test_frame_buffers_take_their_pages_from_the_eal_mode(tmp_path, pcapgen, memory, pages):
    # Frame buffers come from a mempool region: huge pages when EAL has them,
    # small pages from the start without them, and no fallback warning either way.
    pcap = pcapgen(packets=500, seed=4)
    frames = tmp_path / "frames.bin"
    eal = ["--lcores", "0@0,1@1", "-n", "1", "--no-pci", "--log-level", "lib.eal:notice"] + memory
    r = run_capture(tmp_path, eal, pipeline_config(f"net_pcap0,rx_pcap={pcap}", frames).replace(
        "mtu = 9000", "mtu = 1500"))
    assert "frame pool sluice_frames_1: 64 buffers of " in r.stderr
    assert f"{pages} pages" in r.stderr, r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr
    s = json.loads((tmp_path / "frames.bin.json").read_text())
    assert s["totals"]["egress"]["packets"] == 500


# --- software RSS -------------------------------------------------------------------------

DEFAULT_RSS_KEY = bytes([
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa])
SYMMETRIC_RSS_KEY = bytes([0x6d, 0x5a] * 20)


def rss_tuple(frame):
    """The bytes a NIC hashes (as sluice's software RSS takes them), b"" for non-IP."""
    off = 12
    for _ in range(3):
        if len(frame) < off + 2:
            return b""
        etype = int.from_bytes(frame[off:off + 2], "big")
        if etype in (0x0800, 0x86DD):
            break
        if etype not in (0x8100, 0x88A8):
            return b""
        off += 4
    else:
        return b""
    ip = frame[off + 2:]
    if etype == 0x0800 and len(ip) >= 20 and ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        fragment = ((ip[6] & 0x3F) | ip[7]) != 0
        if ip[9] in (6, 17) and not fragment and ihl >= 20 and len(ip) >= ihl + 4:
            return ip[12:20] + ip[ihl:ihl + 4]
        return ip[12:20]
    if etype == 0x86DD and len(ip) >= 40 and ip[0] >> 4 == 6:
        if ip[6] in (6, 17) and len(ip) >= 44:
            return ip[8:40] + ip[40:44]
        return ip[8:40]
    return b""


def toeplitz(key, data):
    """The Toeplitz hash, bit by bit (an implementation independent of sluice's)."""
    k, klen = int.from_bytes(key, "big"), len(key) * 8
    bits, n = int.from_bytes(data, "big"), len(data) * 8
    h = 0
    for i in range(n):
        if bits >> (n - 1 - i) & 1:
            h ^= (k >> (klen - 32 - i)) & 0xFFFFFFFF
    return h


@pytest.mark.parametrize("symmetric", [False, True])
def test_software_rss_spreads_flows_over_queues(tmp_path, pcapgen, symmetric):
    """net_pcap has no RSS: with rx_queues = 2 sluice polls its one queue and deals the packets
    to two capture streams by the Toeplitz hash. Every packet is captured exactly once, in the
    stream the hash names (the NIC's default redirection table: hash % 128, round-robin over the
    queues), so each flow (with a symmetric key, each conversation) is in one stream, in order."""
    pcap = pcapgen(packets=6000, seed=29, flows=80, ipv6_percent=25)
    frames = tmp_path / "frames.bin"
    cfg = textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_pcap={pcap}"
        rx_queues = 2
        rss_symmetric = {str(symmetric).lower()}
        [lcores]
        rx = [1, 2]
        [capture]
        overflow = "backpressure"
        [egress]
        type = "file"
        path = "{frames}"
        [stats]
        interval_s = 0
        summary_json = "{frames}.json"
        """)
    r = run_capture(tmp_path, EAL_PIPE, cfg)
    assert "software Toeplitz hash" in r.stderr
    key = SYMMETRIC_RSS_KEY if symmetric else DEFAULT_RSS_KEY
    want = [d for _, _, _, _, d in read_pcap(pcap)]
    expected = {1: [], 2: []}
    for d in want:
        t = rss_tuple(d)
        expected[1 + (toeplitz(key, t) if t else 0) % 128 % 2].append(d)
    assert expected[1] and expected[2]
    got = {}
    for stream in (1, 2):
        out = tmp_path / f"out{stream}.pcap"
        summary = decode(Path(f"{frames}.{stream}"), out)
        assert "0 sequence gap(s)" in summary
        got[stream] = [d for _, _, _, _, d in read_pcap(out)]
    assert sorted(got[1] + got[2]) == sorted(want)  # every packet exactly once
    assert got == expected                          # in its hash's stream, in order
    # A flow (a conversation, with the symmetric key) never spans both streams.
    where = {}
    for stream, packets in got.items():
        for d in packets:
            t = rss_tuple(d)
            if not t:
                continue
            a, b = (t[:4], t[4:8]) if len(t) in (8, 12) else (t[:16], t[16:32])
            ports = (t[8:10], t[10:12]) if len(t) == 12 else (t[32:34], t[34:36]) if len(t) == 36 else (b"", b"")
            flow = (a, ports[0], b, ports[1])
            if symmetric:
                flow = tuple(sorted([(a, ports[0]), (b, ports[1])]))
            assert where.setdefault(flow, stream) == stream
    s = json.loads(Path(f"{frames}.json").read_text())
    assert s["totals"]["rss"]["packets"] == len(want)
    assert s["totals"]["rss"]["handed_over"] == len(expected[2])
    assert s["totals"]["queue"]["rx_packets"] == len(want)
    assert s["dropped"] == 0
