"""The collector's disk fills up under a real stream: it stops
acknowledging, the sender keeps its frames and backs off (no reconnect
storm), and when space returns everything is written, nothing lost."""
import subprocess
import time

import pytest

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               start_send)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, unmounted afterwards."""
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_disk_full_stops_acknowledging_backs_off_and_loses_nothing(tmp_path, pcapgen,
                                                                    small_disk):
    pcap = pcapgen(packets=6000, nanosecond=True, seed=4)  # ~4 MB of pcapng
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (3 << 20))  # leaves about 1 MiB
    out = small_disk / "out"
    col = Collector(out)
    sender, report = start_send(pcap, col.port, stream_id=5, reconnect_min_ms=50,
                                reconnect_max_ms=400, codec="none")
    assert col.wait_for("the collector cannot write", timeout=60), col.log()
    t0 = time.time()
    time.sleep(3)
    filler.unlink()  # space returns
    window = time.time() - t0
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0
    refused = col.result()["counters"]["dropped_storage"]
    # Reconnecting at the minimum delay (a storm) would be window / 0.05
    # attempts; with a growing delay up to 400 ms it is at most about
    # window / 0.2 plus the first few.
    assert 1 <= refused <= window / 0.2 + 8, (refused, window)
    assert "(storage)" in err
    assert_same_packets(read_stream(out, 5), expected_packets(pcap))
