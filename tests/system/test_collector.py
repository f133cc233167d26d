"""sluice-collector end to end: pcap -> sluice-send (TcpSender) -> collector ->
pcapng, read back with our own parser and with Wireshark's (tshark, editcap,
capinfos). The helpers live in collector_helpers.py."""
import json
import signal
import subprocess
import time

import pytest

from collector_helpers import (COLLECTOR, Collector, assert_order_per_queue,
                               assert_same_packets, check_with_wireshark, expected_packets,
                               free_port, output_files, read_stream, send, start_send,
                               write_key)


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
    # Every batch written holds at least one frame.
    batches = col.result()["counters"]["batches_written"]
    assert 1 <= batches <= s["run"]["frames_written"], batches
    # The report splits each frame's latency at its submission: neither
    # part can exceed the whole.
    lat = rep["latency_ns"]
    assert lat["frames"] == rep["offered_frames"], lat
    for part in ("to_submit", "to_ack"):
        assert 0 < lat[part]["max"] <= lat["max"], lat
        assert lat[part]["p50"] <= lat[part]["p99"] <= lat[part]["p999"] <= lat[part]["max"], lat
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
