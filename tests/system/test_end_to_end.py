"""The whole product: a pcap -> sluice on a virtual NIC -> TCP -> sluice-collector
-> pcapng, read back by Wireshark's tools. Exactness, a collector killed and
restarted mid-stream, a collector too slow for the sender, and keys."""
import json
import signal
import textwrap
import time

import pytest

from collector_helpers import Collector, check_with_wireshark, read_stream, write_key
from conftest import EAL, Running, read_pcap, run_sluice, write_config


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


def expected(pcap):
    """What the collector must hold: every packet of the pcap on port 0 queue 0,
    microsecond timestamps (what net_pcap keeps) in nanoseconds."""
    return [{"port": 0, "queue": 0, "ts_ns": sec * 1_000_000_000 + usec * 1000,
             "orig_len": caplen, "data": data}
            for sec, usec, caplen, _, data in read_pcap(pcap)]


def same(got, want):
    assert len(got) == len(want), f"{len(got)} packets written, {len(want)} expected"
    for i, (g, w) in enumerate(zip(got, want)):
        for k in ("port", "queue", "ts_ns", "orig_len", "data"):
            assert g[k] == w[k], f"packet {i}: {k} differs"


@pytest.mark.parametrize("codec,compress", [("none", None), ("lz4", None), ("zstd", "zstd")])
def test_pcap_in_equals_pcapng_out(tmp_path, pcapgen, codec, compress):
    pcap = pcapgen(packets=8000, seed=31, jumbo_percent=2, ipv6_percent=20)
    out = tmp_path / "out"
    col = Collector(out, args=["--compress", compress] if compress else [])
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary,
                                               f'[codec]\ntype = "{codec}"\n'))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--idle-timeout", "1.5"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert "stream 1: connected" in r.stderr
    col.stop()
    want = expected(pcap)
    same(read_stream(out, 1), want)
    check_with_wireshark(out, 1, want, tmp_path)  # tshark, editcap, capinfos agree
    s = json.loads(summary.read_text())
    assert s["dropped"] == 0
    assert s["totals"]["egress"]["frames"] == s["totals"]["egress"]["frames_done"]
    assert col.stream(1)["run"]["packets_lost"] == 0


def test_collector_killed_mid_stream_every_packet_exactly_once(tmp_path, pcapgen):
    # A slow codec (zstd 19) keeps the stream going for seconds; backpressure
    # keeps every packet while the collector is away.
    pcap = pcapgen(packets=60000, seed=32)
    out = tmp_path / "out"
    col = Collector(out)
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary, """
        [codec]
        type = "zstd"
        zstd_level = 19
        [batch]
        frame_size = 65536
        [capture]
        overflow = "backpressure"
        """))
    sluice = Running(EAL + ["--", "--config", str(cfg), "--idle-timeout", "3"], timeout=60)
    try:
        assert sluice.wait_for("stream 1: connected", 30)
        for _ in range(2):
            time.sleep(1.0)
            col.kill()                           # SIGKILL: no flush, no goodbye
            assert sluice.wait_for("(reconnecting)", 30)
            time.sleep(0.5)
            col = Collector(out, port=col.port)  # same directory: recovers its state
        rc = sluice.proc.wait(timeout=300)       # idle once the pcap is done, then drains
    finally:
        sluice.kill()
    assert rc == 0, "".join(sluice.stderr_lines)
    col.stop()
    s = json.loads(summary.read_text())
    assert s["dropped"] == 0, s
    assert s["totals"]["queue"]["captured"] == 60000
    assert s["totals"]["transport"]["connects"] >= 3
    same(read_stream(out, 1), expected(pcap))


SMALL_BUFFERS = textwrap.dedent("""
    [mempool]
    frame_buffers = 16
    [batch]
    frame_size = 65536
    """)


def run_against_frozen_collector(tmp_path, pcap, extra, args, while_frozen=None):
    """sluice replays `pcap` to a collector frozen (SIGSTOP) for 3 s from
    before it starts, then thawed; sluice must exit 0 on its own. Returns
    (summary dict, collector, output dir, sluice's stderr)."""
    out = tmp_path / "out"
    col = Collector(out)
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary, SMALL_BUFFERS + extra))
    col.proc.send_signal(signal.SIGSTOP)
    try:
        sluice = Running(EAL + ["--", "--config", str(cfg)] + args, timeout=60)
        time.sleep(3)
        if while_frozen:
            while_frozen(sluice)
    finally:
        col.proc.send_signal(signal.SIGCONT)
    rc = sluice.proc.wait(timeout=120)
    _, err = sluice.proc.communicate()
    stderr = "".join(sluice.stderr_lines) + err
    assert rc == 0, stderr
    col.stop()
    return json.loads(summary.read_text()), col, out, stderr


def test_collector_slower_than_sender_drops_are_counted_exactly(tmp_path, pcapgen):
    # The collector is frozen (SIGSTOP) while sluice captures: the retransmit
    # buffer fills and, with the drop policy, the rest is dropped and counted.
    pcap = pcapgen(packets=20000, seed=33)
    s, col, out, stderr = run_against_frozen_collector(
        tmp_path, pcap, "", ["--idle-timeout", "2", "--set", "egress.retransmit_frames=8",
                             "--set", "egress.timeout_ms=1000"])
    written = len(read_stream(out, 1))
    offered = 20000
    assert s["ports"][0]["ipackets"] == offered
    assert s["dropped"] > 0, "the collector was never too slow"
    assert offered == written + s["dropped"]
    # The collector saw the drops as gaps in the stream and counted them too.
    assert col.stream(1)["run"]["packets_lost"] == s["dropped"], stderr + col.log()
    assert col.stream(1)["run"]["packets_written"] == written


def test_idle_timeout_does_not_count_time_held_by_backpressure(tmp_path, pcapgen):
    # --idle-timeout ends a replay that has run out of packets, not one that
    # backpressure holds back: the collector frozen for three times the idle
    # timeout, every packet still arrives once it thaws.
    pcap = pcapgen(packets=40000, seed=35)

    def still_running(sluice):
        assert sluice.proc.poll() is None, (
            "sluice stopped while backpressure held rx back:\n" + "".join(sluice.stderr_lines))

    s, _, out, _ = run_against_frozen_collector(
        tmp_path, pcap, '[capture]\noverflow = "backpressure"\n',
        ["--idle-timeout", "1", "--set", "egress.retransmit_frames=8"], still_running)
    assert s["totals"]["capture"]["rx_paused"] > 0, "backpressure never engaged"
    assert s["dropped"] == 0, s
    assert s["totals"]["queue"]["captured"] == 40000
    same(read_stream(out, 1), expected(pcap))


def test_wrong_key_is_refused_and_reported(tmp_path, pcapgen):
    pcap = pcapgen(packets=500, seed=34)
    out = tmp_path / "out"
    col = Collector(out, args=["--key-file",
                               write_key(tmp_path / "collector.key", "right-key-0123456789")])
    summary = tmp_path / "sluice.json"
    key = write_key(tmp_path / "sender.key", "wrong-key-9876543210")
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary, ""))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--idle-timeout", "1",
                          "--set", f"egress.key_file={key}",
                          "--set", "egress.shutdown_timeout_ms=1000"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert "(reconnecting)" in r.stderr
    assert "key" in r.stderr.lower()
    assert "never acknowledged" in r.stdout
    col.stop()
    assert col.result()["counters"]["refused_auth"] >= 1
    assert read_stream(out, 1) == []


def test_right_key_is_accepted(tmp_path, pcapgen):
    pcap = pcapgen(packets=500, seed=35)
    out = tmp_path / "out"
    key = write_key(tmp_path / "shared.key", "a-shared-secret-0123456789")
    col = Collector(out, args=["--key-file", key])
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--idle-timeout", "1",
                          "--set", f"egress.key_file={key}"], timeout=120)
    assert r.returncode == 0, r.stderr
    col.stop()
    same(read_stream(out, 1), expected(pcap))
