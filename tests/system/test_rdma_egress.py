"""egress.type = "rdma" on a host without an RDMA device (this one): sluice
refuses to start, says why and how to check, and does not crash. The RDMA
path itself runs in the testbed guest (tests/rdma, scripts/rdma-testbed test)."""
import shutil
import subprocess
import textwrap

import pytest

from conftest import EAL, run_sluice, write_config


def has_rdma_device():
    tool = shutil.which("ibv_devices")
    if tool is None:
        return False
    out = subprocess.run([tool], capture_output=True, text=True).stdout
    # ibv_devices prints a two-line header, then one line per device.
    return len([line for line in out.splitlines()[2:] if line.strip()]) > 0


@pytest.mark.skipif(has_rdma_device(), reason="this host has an RDMA device")
def test_rdma_egress_without_a_device_fails_at_start_with_the_fix(tmp_path, pcapgen):
    pcap = pcapgen(packets=10, seed=3)
    cfg = write_config(tmp_path, textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_pcap={pcap}"
        [lcores]
        rx = [1]
        [egress]
        type = "rdma"
        address = "192.0.2.1:7700"
        [stats]
        interval_s = 0
        """))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--idle-timeout", "1"], timeout=60)
    assert r.returncode not in (0, -6, -11), r.stderr  # failed, and not by a crash
    assert r.returncode > 0, r.stderr
    assert "no RDMA device" in r.stderr, r.stderr
    assert "ibv_devices" in r.stderr and "rdma link" in r.stderr, r.stderr
    assert "capturing" not in r.stderr
