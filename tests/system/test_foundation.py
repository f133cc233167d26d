"""sluice on real virtual NICs: exact counts, bounded runs, signals, config
checks, and the EAL failures an operator meets, each with its fix."""
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import EAL, ROOT, SLUICE, Running, read_pcap, run_sluice, write_config


def config(port, extra=""):
    return textwrap.dedent(f"""\
        [[ports]]
        name = "{port}"
        mtu = 9000
        [lcores]
        rx = [1]
        [egress]
        type = "null"
        """) + textwrap.dedent(extra)


# ---- config checking, no hardware -----------------------------------------------

def test_check_config_reports_three_mistakes_with_lines(tmp_path):
    cfg = write_config(tmp_path, textwrap.dedent("""\
        [[ports]]
        name = "net_null0"
        rx_queues = 0
        [batch]
        flush_timout_us = 100
        [codec]
        type = "lz5"
        """))
    r = run_sluice(["--check-config", str(cfg)])
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if ": error: " in l]
    assert len(errors) == 3, r.stderr
    assert errors[0].startswith(f"{cfg}:3:13: error: ports[0].rx_queues: expected an integer in 1..64")
    assert errors[1].startswith(f"{cfg}:5:1: error: batch.flush_timout_us: unknown key")
    assert "did you mean 'batch.flush_timeout_us'" in errors[1]
    assert errors[2].startswith(f"{cfg}:7:8: error: codec.type: expected one of")
    assert "(did you mean \"lz4\"?)" in errors[2]
    assert "3 error(s)" in r.stderr


def test_check_config_accepts_the_shipped_example():
    r = run_sluice(["--check-config", str(ROOT / "config" / "sluice.toml")])
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_print_config_fills_in_defaults(tmp_path):
    cfg = write_config(tmp_path, '[[ports]]\nname = "net_null0"\n')
    r = run_sluice(["--print-config", str(cfg), "--set", "codec.type=zstd"])
    assert r.returncode == 0, r.stderr
    assert 'type = "zstd"' in r.stdout
    assert "flush_timeout_us = 1000" in r.stdout
    assert 'name = "net_null0"' in r.stdout


def test_config_reference_matches_docs():
    r = run_sluice(["--config-reference"])
    assert r.returncode == 0
    assert r.stdout in (ROOT / "docs" / "configuration.md").read_text()


def test_run_refuses_a_bad_config_before_touching_eal(tmp_path):
    cfg = write_config(tmp_path, '[[ports]]\nname = "net_null0"\nmtu = 1\n')
    r = run_sluice(EAL + ["--", "--config", str(cfg)])
    assert r.returncode == 2
    assert "ports[0].mtu: expected an integer in 68..9600, found 1" in r.stderr
    assert "EAL:" not in r.stderr


# ---- real runs ----------------------------------------------------------------------

def test_net_pcap_counts_exactly_the_packets_and_bytes_of_the_pcap(tmp_path, pcapgen):
    pcap = pcapgen(packets=3000, seed=7, jumbo_percent=3, truncate_percent=2)
    records = list(read_pcap(pcap))
    want_packets = len(records)
    want_bytes = sum(caplen for _, _, caplen, _, _ in records)
    assert any(caplen > 2048 for _, _, caplen, _, _ in records), "no jumbo frame in the sample"
    summary = tmp_path / "summary.json"
    cfg = write_config(tmp_path, config(f"net_pcap0,rx_pcap={pcap}", f"""
        [stats]
        summary_json = "{summary}"
        """))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--idle-timeout", "1", "--duration", "60"])
    assert r.returncode == 0, r.stderr
    s = json.loads(summary.read_text())
    assert s["totals"]["queue"]["rx_packets"] == want_packets
    assert s["totals"]["queue"]["rx_bytes"] == want_bytes
    # The NIC's own counters agree with ours.
    assert s["ports"][0]["ipackets"] == want_packets
    assert s["ports"][0]["ibytes"] == want_bytes
    assert "idle for 1s" in r.stderr


def test_net_null_bounded_run_prints_stats_and_a_summary(tmp_path):
    summary = tmp_path / "summary.json"
    cfg = write_config(tmp_path, config("net_null0", f"""
        [stats]
        interval_s = 1
        summary_json = "{summary}"
        """))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--duration", "2.5"])
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if re.match(r"\s+\d+\.\d+s  rx ", l)]
    assert len(lines) >= 2, r.stdout
    s = json.loads(summary.read_text())
    assert s["totals"]["queue"]["rx_packets"] > 0
    # Every packet the port delivered was counted by the queue's lcore.
    assert s["ports"][0]["ipackets"] == s["totals"]["queue"]["rx_packets"]
    assert "summary after" in r.stdout
    assert "--duration 2.5s reached" in r.stderr


def test_packet_limit_stops_the_run(tmp_path):
    summary = tmp_path / "summary.json"
    cfg = write_config(tmp_path, config("net_null0", f'[stats]\nsummary_json = "{summary}"\n'))
    r = run_sluice(EAL + ["--", "--config", str(cfg), "--packets", "1000000"])
    assert r.returncode == 0, r.stderr
    assert json.loads(summary.read_text())["totals"]["queue"]["rx_packets"] >= 1000000


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_a_summary(tmp_path, sig):
    cfg = write_config(tmp_path, config("net_null0"))
    run = Running(EAL + ["--", "--config", str(cfg), "--stats-interval", "0"])
    rc, out, err = run.stop(sig)
    assert rc == 0, err
    assert "summary after" in out
    assert ("SIGINT" if sig == signal.SIGINT else "SIGTERM") in err


# ---- failures an operator meets ----------------------------------------------------------

def test_port_not_found_names_devbind(tmp_path):
    cfg = write_config(tmp_path, config("0000:3b:00.0"))
    r = run_sluice(EAL + ["--", "--config", str(cfg)])
    assert r.returncode == 4, r.stderr
    assert "port '0000:3b:00.0' not found" in r.stderr
    assert "dpdk-devbind.py -b vfio-pci 0000:3b:00.0" in r.stderr


def test_unknown_vdev_driver(tmp_path):
    cfg = write_config(tmp_path, config("net_bogus0"))
    r = run_sluice(EAL + ["--", "--config", str(cfg)])
    assert r.returncode == 4, r.stderr
    assert "port 'net_bogus0' not found" in r.stderr
    assert "check the vdev string" in r.stderr


def test_port_setup_failure_exits_cleanly(tmp_path, pcapgen):
    # net_pcap cannot loop (infinite_rx) over jumbo frames in 2 KB mbufs: queue
    # set-up fails, and sluice must say so and exit, not crash in teardown.
    pcap = pcapgen(packets=200, jumbo_percent=50)
    cfg = write_config(tmp_path, config(f"net_pcap0,rx_pcap={pcap},infinite_rx=1"))
    r = run_sluice(EAL + ["--", "--config", str(cfg)])
    assert r.returncode == 4, r.stderr
    assert "rx queue 0 setup failed" in r.stderr
    assert "Raise mempool.mbuf_size" in r.stderr


def test_worker_lcore_outside_eal_list(tmp_path):
    cfg = write_config(tmp_path, config("net_null0").replace("rx = [1]", "rx = [5]"))
    r = run_sluice(EAL + ["--", "--config", str(cfg)])
    assert r.returncode == 2, r.stderr
    assert "lcores.rx lists lcore 5, which EAL does not run (EAL lcores: 0,1)" in r.stderr


def test_worker_on_the_main_lcore(tmp_path):
    cfg = write_config(tmp_path, config("net_null0").replace("rx = [1]", "rx = [0]"))
    r = run_sluice(EAL + ["--", "--config", str(cfg)])
    assert r.returncode == 2, r.stderr
    assert "the main lcore" in r.stderr


def test_bad_eal_arguments(tmp_path):
    cfg = write_config(tmp_path, config("net_null0"))
    r = run_sluice(["-l", "0,77", "--in-memory", "--", "--config", str(cfg)])
    assert r.returncode == 2, r.stderr
    assert "EAL rejected its arguments" in r.stderr


def test_not_enough_huge_page_memory(tmp_path):
    cfg = write_config(tmp_path, config("net_null0"))
    r = run_sluice(EAL + ["-m", "200000", "--", "--config", str(cfg)])
    assert r.returncode == 3, r.stderr
    assert "not enough huge-page memory (EAL was asked for 200000 MB" in r.stderr
    assert "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" in r.stderr


def test_file_prefix_in_use(tmp_path):
    cfg = write_config(tmp_path, config("net_null0"))
    prefix = f"sluicetest{os.getpid()}"
    eal = ["-l", "0,1", "-n", "1", "--no-pci", "-m", "128", "--file-prefix", prefix]
    first = Running(eal + ["--", "--config", str(cfg), "--stats-interval", "0"])
    try:
        r = run_sluice(eal + ["--", "--config", str(cfg)])
        assert r.returncode == 3, r.stderr
        assert f"another DPDK primary process already uses the file prefix '{prefix}'" in r.stderr
        assert "--in-memory" in r.stderr
    finally:
        rc, _, err = first.stop()
    assert rc == 0, err


def in_private_mounts(script):
    """Runs a shell script in a private mount namespace (changes stay inside)."""
    return ["unshare", "-m", "--propagation", "private", "bash", "-c", script]


def test_no_free_huge_pages(tmp_path):
    # A private mount namespace where sysfs says no 2 MB page is free.
    cfg = write_config(tmp_path, config("net_null0"))
    fake = textwrap.dedent("""\
        set -e
        fake() { mount -t tmpfs none "$1"; mkdir -p "$1/hugepages-2048kB"
                 for f in nr_hugepages free_hugepages resv_hugepages surplus_hugepages \\
                          nr_overcommit_hugepages; do echo 0 > "$1/hugepages-2048kB/$f"; done; }
        fake /sys/kernel/mm/hugepages
        for n in /sys/devices/system/node/node*/hugepages; do [ -d "$n" ] && fake "$n"; done
        exec "$@"
        """)
    cmd = in_private_mounts(fake) + ["fake", str(SLUICE), "-l", "0,1", "-n", "1", "--no-pci",
                                     "--file-prefix", f"nohp{os.getpid()}", "--",
                                     "--config", str(cfg)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "no free huge pages" in r.stderr
    assert "echo 1024 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" in r.stderr


def test_hugetlbfs_not_mounted(tmp_path):
    cfg = write_config(tmp_path, config("net_null0"))
    script = ("awk '$3==\"hugetlbfs\"{print $2}' /proc/mounts | xargs -r -n1 umount; "
              'exec "$@"')
    cmd = in_private_mounts(script) + ["nomount", str(SLUICE), "-l", "0,1", "-n", "1",
                                       "--no-pci", "--file-prefix", f"nomnt{os.getpid()}", "--",
                                       "--config", str(cfg)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "no hugetlbfs is mounted" in r.stderr
    assert "mount -t hugetlbfs nodev /dev/hugepages" in r.stderr


# ---- dpdk-dumpcap on sluice's ports (capture.pdump) ---------------------------------

def test_dpdk_dumpcap_attaches_and_copies_what_a_port_receives(tmp_path, pcapgen):
    """capture.pdump (default on): dpdk-dumpcap attaches to a running sluice
    as a secondary process and writes what port 0 receives; every packet it
    wrote is one of the input's, byte for byte."""
    # A secondary process learns the primary's vdev arguments cut to 64
    # bytes: the pcap needs a short path.
    src = pcapgen(packets=200)
    pcap = Path(shutil.copy(src, f"/tmp/sp{os.getpid()}.pcap"))
    cfg = write_config(tmp_path, config(f"net_pcap0,rx_pcap={pcap},infinite_rx=1"))
    prefix = f"sluicepdump{os.getpid()}"
    eal = ["-l", "0,1", "-n", "1", "--no-pci", "-m", "256", "--file-prefix", prefix]
    sluice = Running(eal + ["--", "--config", str(cfg), "--stats-interval", "0"])
    out = tmp_path / "dump.pcap"
    try:
        d = subprocess.run(["dpdk-dumpcap", f"--file-prefix={prefix}", "-i", "0", "-c", "100",
                            "-P", "-q", "-w", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert d.returncode == 0, d.stdout + d.stderr
    finally:
        rc, _, err = sluice.stop()
        pcap.unlink()
    assert rc == 0, err
    got = [data for *_, data in read_pcap(out)]
    want = {data for *_, data in read_pcap(src)}
    assert len(got) >= 100
    assert all(g in want for g in got)


def test_pdump_under_in_memory_says_how_to_let_dumpcap_attach(tmp_path):
    cfg = write_config(tmp_path, config("net_null0"))
    sluice = Running(EAL + ["--", "--config", str(cfg), "--stats-interval", "0"])
    rc, _, err = sluice.stop()
    assert rc == 0, err
    assert "capture.pdump: dpdk-dumpcap cannot attach" in err and "--file-prefix" in err, err
