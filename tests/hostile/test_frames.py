"""Frames built to break the collector's bounds, each against a real
sluice-collector while an honest stream is written."""
from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               send, start_send)


def honest_stream_survives(col, pcap, out, stream_id=1):
    """Sends `pcap` as stream `stream_id` to completion and checks every packet."""
    p, rep = send(pcap, col.port, stream_id=stream_id)
    assert p.returncode == 0, p.stderr
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    return rep


def test_frame_naming_thousands_of_interfaces(tmp_path, pcapgen):
    """A frame naming 3000 (port, queue) interfaces used to write past the
    collector's interface table ("malloc(): corrupted top size"). Now it is
    refused with REJECT limit and counted; the honest stream is exact."""
    honest = pcapgen("honest.pcap", packets=5000, nanosecond=True)
    attack = pcapgen("attack.pcap", packets=20000)
    out = tmp_path / "out"
    col = Collector(out)
    attacker, _ = start_send(attack, col.port, stream_id=2, queues=3000, snaplen=64,
                             codec="none", reconnect_min_ms=20, reconnect_max_ms=50)
    assert col.wait_for("interfaces, more than a pcapng file", timeout=60), col.log()
    honest_stream_survives(col, honest, out)
    attacker.terminate()
    _, err = attacker.communicate(timeout=60)
    assert "rejected the connection (limit)" in err, err
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    assert col.stop() == 0
    assert col.result()["counters"]["dropped_over_limit"] >= 1
    assert_same_packets(read_stream(out, 1), expected_packets(honest))
