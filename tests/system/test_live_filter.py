"""capture.filter changed while sluice captures, with sluice-ctl over DPDK's
telemetry socket. sluice captures a veth interface (net_pcap rx_iface); the
test sends UDP and TCP packets into its peer in three rounds and changes the
filter between them, each time only once sluice has received the round: the
file must then hold exactly the UDP packets of round 1, the TCP packets of
round 2 and every packet of round 3, in that order. A refused expression
leaves the filter as it was."""
import json
import os
import socket
import struct
import subprocess
import textwrap
import time
import uuid

import pytest

from conftest import BUILD, Running, read_pcap, write_config

CTL = BUILD / "tools" / "sluice-ctl"
DECODE = BUILD / "tools" / "sluice-decode"
ROUND = 40  # packets of each protocol per round


def ctl(prefix, *args):
    return subprocess.run([str(CTL), "--file-prefix", prefix, *args], capture_output=True,
                          text=True, timeout=60)


def frame(proto, n):
    """An Ethernet/IPv4 packet to 10.9.0.2, UDP or TCP, numbered in its payload."""
    payload = struct.pack(">4sI", b"SLCF", n)
    if proto == "udp":
        l4 = struct.pack(">HHHH", 4000 + n % 100, 53, 8 + len(payload), 0) + payload
        ipproto = 17
    else:
        l4 = struct.pack(">HHIIBBHHH", 5000 + n % 100, 80, n, 0, 5 << 4, 0x18, 8192, 0, 0) + payload
        ipproto = 6
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), n & 0xFFFF, 0, 64, ipproto, 0,
                     socket.inet_aton("10.9.0.1"), socket.inet_aton("10.9.0.2"))
    eth = bytes.fromhex("02000000000202000000000108 00".replace(" ", ""))
    return eth + ip + l4


def received(prefix):
    """rx_packets over every queue, from `sluice-ctl stats`."""
    r = ctl(prefix, "stats")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)["/sluice/stats"]
    return sum(v.get("rx_packets", 0) for k, v in stats.items()
               if isinstance(v, dict) and k.startswith("queue"))


def send_round(tx, prefix, first, want):
    for i in range(ROUND):
        tx.send(frame("udp", first + 2 * i))
        tx.send(frame("tcp", first + 2 * i + 1))
    deadline = time.time() + 60
    while received(prefix) < want and time.time() < deadline:
        time.sleep(0.05)
    assert received(prefix) == want


@pytest.fixture
def veth():
    if os.geteuid() != 0:
        pytest.skip("creating a veth pair needs root")
    tag = uuid.uuid4().hex[:6]
    a, b = f"slcf{tag}a", f"slcf{tag}b"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        for dev in (a, b):
            # No IPv6 router solicitations or MLD reports: only the test's packets.
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], check=True)
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], check=False)


def test_the_filter_changes_between_bursts_and_a_bad_one_changes_nothing(tmp_path, veth):
    capture_if, peer_if = veth
    prefix = f"slcf{uuid.uuid4().hex[:8]}"
    frames = tmp_path / "frames.bin"
    cfg = write_config(tmp_path, textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_iface={capture_if}"
        [lcores]
        rx = [1]
        [capture]
        filter = "udp"
        [egress]
        type = "file"
        path = "{frames}"
        [stats]
        interval_s = 0
        telemetry = true
        """))
    eal = ["--lcores", "0@0,1@1", "-n", "1", "--no-pci", "--file-prefix", prefix,
           "--log-level", "lib.eal:notice"]
    sluice = Running(eal + ["--", "--config", str(cfg)])
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((peer_if, 0))
    try:
        r = ctl(prefix, "filter")
        assert r.returncode == 0 and r.stdout.strip() == "udp", (r.stdout, r.stderr)

        send_round(tx, prefix, 0, 2 * ROUND)

        r = ctl(prefix, "filter", "tcp", "and", "(")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "refused" in r.stderr and "the filter stays 'udp'" in r.stderr, r.stderr
        r = ctl(prefix, "filter")
        assert r.stdout.strip() == "udp", r.stdout

        r = ctl(prefix, "filter", "tcp")
        assert r.returncode == 0, r.stderr
        assert "changed from 'udp' to 'tcp'" in r.stdout, r.stdout
        send_round(tx, prefix, 1000, 4 * ROUND)

        r = ctl(prefix, "filter", "none")
        assert r.returncode == 0, r.stderr
        assert "to none (every packet kept)" in r.stdout, r.stdout
        send_round(tx, prefix, 2000, 6 * ROUND)

        rc, _, err = sluice.stop()
        assert rc == 0, err
    finally:
        tx.close()
        sluice.kill()
    assert "capture.filter changed from \"udp\" to \"tcp\"" in err, err
    assert "capture.filter \"tcp and (\" refused" in err, err

    pcap = tmp_path / "out.pcap"
    r = subprocess.run([str(DECODE), str(frames), "--pcap", str(pcap)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = []
    for _, _, _, _, data in read_pcap(pcap):
        assert data[12:14] == b"\x08\x00" and b"SLCF" in data, data.hex()
        n = struct.unpack(">I", data[data.index(b"SLCF") + 4:][:4])[0]
        got.append(({17: "udp", 6: "tcp"}[data[23]], n))
    expected = ([("udp", 2 * i) for i in range(ROUND)]
                + [("tcp", 1000 + 2 * i + 1) for i in range(ROUND)]
                + [(p, 2000 + 2 * i + k) for i in range(ROUND) for k, p in enumerate(("udp", "tcp"))])
    assert got == expected


def test_sluice_ctl_says_what_to_check_when_no_sluice_answers(tmp_path):
    r = ctl(f"absent{uuid.uuid4().hex[:8]}", "filter")
    assert r.returncode == 1
    assert "cannot reach sluice at" in r.stderr and "--file-prefix" in r.stderr, r.stderr
    r = subprocess.run([str(CTL), "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command frobnicate" in r.stderr, r.stderr
    # The telemetry socket reads at most 1024 bytes: a longer command is refused
    # before it is sent, with the limit named.
    r = subprocess.run([str(CTL), "filter", "host " + "1" * 1100], capture_output=True, text=True)
    assert r.returncode == 2 and "longer than the telemetry socket takes" in r.stderr, r.stderr
