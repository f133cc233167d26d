"""scripts/demo, the README's first command: pcap -> sluice -> TCP ->
sluice-collector -> pcapng, checked with Wireshark's tools by the script itself."""
import json
import os
import subprocess

from conftest import BUILD, ROOT


def test_demo_delivers_every_packet_and_says_so(tmp_path):
    env = dict(os.environ, SLUICE_BUILD=str(BUILD), SLUICE_DEMO_DIR=str(tmp_path),
               SLUICE_DEMO_PACKETS="3000", SLUICE_DEMO_CODEC="zstd")
    r = subprocess.run([str(ROOT / "scripts" / "demo")], env=env, capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "OK: 3000 of 3000 packets in the pcapng, identical to the pcap" in out
    # Both ends' stats were shown, and both summaries agree with the check.
    assert "[collector]   stream 1: this run 3000 packets" in out
    assert "total: rx 3000 = filtered 0 + captured 3000" in out
    s = json.loads((tmp_path / "sluice-summary.json").read_text())
    assert s["dropped"] == 0 and s["totals"]["queue"]["captured"] == 3000
    c = json.loads((tmp_path / "collector-summary.json").read_text())
    stream = next(x for x in c["streams"] if x["stream_id"] == 1)
    assert stream["run"]["packets_written"] == 3000 and stream["run"]["packets_lost"] == 0
