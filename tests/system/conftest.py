"""Shared fixtures for the system tests: real sluice runs on virtual NICs."""
import os
import select
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SLUICE_BUILD", ROOT / "build"))
SLUICE = BUILD / "dataplane" / "sluice"
PCAPGEN = BUILD / "tools" / "sluice-pcapgen"

# Two lcores: 0 is the main (control) lcore, 1 the worker. --in-memory lets
# tests run side by side without file-prefix clashes.
EAL = ["-l", "0,1", "-n", "1", "--in-memory", "--no-pci", "--log-level", "lib.eal:notice"]


def read_pcap(path):
    """Yields (ts_sec, ts_frac, caplen, origlen, data) for each record."""
    data = Path(path).read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), f"{path}: not a little-endian pcap"
    off = 24
    while off < len(data):
        sec, frac, caplen, origlen = struct.unpack_from("<IIII", data, off)
        off += 16
        yield sec, frac, caplen, origlen, data[off:off + caplen]
        off += caplen


@pytest.fixture
def pcapgen(tmp_path):
    def make(name="in.pcap", **opts):
        out = tmp_path / name
        args = [str(PCAPGEN), "--out", str(out)]
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            args += [flag] if v is True else [flag, str(v)]
        subprocess.run(args, check=True)
        return out
    return make


def write_config(tmp_path, text, name="sluice.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run_sluice(args, timeout=60, **kw):
    """Runs sluice to completion; returns the CompletedProcess (text)."""
    return subprocess.run([str(SLUICE)] + list(args), capture_output=True, text=True,
                          timeout=timeout, **kw)


class Running:
    """A sluice started in the background; waits (bounded) for a line on stderr."""

    def __init__(self, args, ready="sluice: capturing", timeout=30, prefix=()):
        self.proc = subprocess.Popen(list(prefix) + [str(SLUICE)] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr_lines = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready_fds, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if not ready_fds:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr_lines.append(line)
            if ready in line:
                return
        self.proc.kill()
        out, err = self.proc.communicate()
        raise AssertionError("sluice did not become ready:\n" + "".join(self.stderr_lines) + err)

    def wait_for(self, text, timeout=30):
        """Reads stderr until a line holds `text`; False at the deadline."""
        if any(text in l for l in self.stderr_lines):
            return True
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not select.select([self.proc.stderr], [], [], 0.2)[0]:
                continue
            line = self.proc.stderr.readline()
            if not line:
                return False
            self.stderr_lines.append(line)
            if text in line:
                return True
        return False

    def stop(self, sig=signal.SIGINT, timeout=30):
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.stderr_lines) + err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(autouse=True)
def no_collector_left_behind():
    """A failing test must not leave a sluice-collector or a nats-server running."""
    yield
    import collector_helpers
    import nats_helpers
    while collector_helpers._running:
        collector_helpers._running.pop().kill()
    while nats_helpers._running:
        nats_helpers._running[-1].stop()
