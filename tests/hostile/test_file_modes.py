"""File modes against a real collector started with the most permissive
umask (000), while an honest sender streams: nothing it writes may be read
by others (captures and their indexes 0640 by default or exactly
--file-mode, state 0600, directories 0750), and a key file others can read
keeps it from starting."""
import os
import stat
import subprocess

from collector_helpers import (COLLECTOR, Collector, assert_same_packets, expected_packets,
                               free_port, read_stream, start_send, write_key)


def modes(out):
    """{relative path: permission bits} of everything under `out`."""
    found = {}
    for root, dirs, files in os.walk(out):
        for name in dirs + files:
            p = os.path.join(root, name)
            found[os.path.relpath(p, out)] = stat.S_IMODE(os.lstat(p).st_mode)
    return found


def test_nothing_the_collector_writes_is_readable_by_others(tmp_path, pcapgen):
    pcap = pcapgen(packets=3000, nanosecond=True, seed=61)
    out = tmp_path / "out"
    key = write_key(tmp_path / "k.key", "k" * 32)
    col = Collector(out, args=["--key-file", key, "--rotate-size", "262144", "--file-mode",
                               "0620"], preexec_fn=lambda: os.umask(0))
    sender, _ = start_send(pcap, col.port, stream_id=1, key_file=key, rate=2000)
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.stop() == 0
    found = modes(out)
    captures = [p for p in found if p.endswith(".pcapng")]
    indexes = [p for p in found if p.endswith(".pcapng.idx")]
    assert len(captures) >= 2 and len(indexes) == len(captures), sorted(found)
    for p, m in found.items():
        if p.endswith(".pcapng") or p.endswith(".pcapng.idx"):
            want = 0o620  # --file-mode, exactly: the index tells what the capture holds
        elif os.path.isdir(out / p):
            want = 0o750
        else:
            want = 0o600  # state, lock
        assert m == want, f"{p}: {m:o}, expected {want:o}"
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))


def test_a_key_file_others_can_read_is_refused(tmp_path):
    key = write_key(tmp_path / "k.key", "k" * 32)
    key.chmod(0o644)
    p = subprocess.run([str(COLLECTOR), "--listen", f"tcp://127.0.0.1:{free_port()}", "--out",
                        str(tmp_path / "out"), "--key-file", str(key)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "chmod 600" in p.stderr, p.stderr
