"""sluice under systemd: sluice-collector's service notifications (sd_notify),
checked against a stand-in NOTIFY_SOCKET, so no systemd is needed."""
import os
import shutil
import signal
import socket
import tempfile
import time

import pytest

from collector_helpers import Collector

# ---- sd_notify -------------------------------------------------------------------


class NotifySocket:
    """Plays systemd's side of sd_notify(3): a datagram socket the collector
    finds through $NOTIFY_SOCKET; every datagram is one message of
    newline-separated KEY=VALUE assignments."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-notify-")  # short: sun_path holds 108 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def receive(self, until, timeout=10):
        """Reads messages until until(messages) holds; False at the deadline."""
        deadline = time.monotonic() + timeout
        while not until(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return False
            self.messages.append(dict(line.split("=", 1)
                                      for line in data.decode().splitlines() if "=" in line))
        return True

    def count(self, key, value="1"):
        return sum(1 for m in self.messages if m.get(key) == value)

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify(monkeypatch):
    n = NotifySocket()
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    yield n
    n.close()


def test_collector_notifies_ready_watchdog_and_stopping(tmp_path, notify, monkeypatch):
    # WatchdogSec=400ms: systemd would expect a WATCHDOG=1 at least that often.
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    c = Collector(tmp_path / "out")
    assert notify.receive(lambda m: any(x.get("READY") == "1" for x in m)), notify.messages
    ready = next(m for m in notify.messages if m.get("READY") == "1")
    assert f":{c.port}" in ready.get("STATUS", ""), ready
    assert str(tmp_path / "out") in ready["STATUS"], ready
    # Pings every half interval, from the event loop, while it idles.
    t0 = time.monotonic()
    assert notify.receive(lambda m: sum(x.get("WATCHDOG") == "1" for x in m) >= 4, timeout=5), \
        notify.messages
    assert time.monotonic() - t0 < 3
    assert notify.count("STOPPING") == 0
    assert c.stop(signal.SIGTERM) == 0, c.log()
    assert notify.receive(lambda m: any(x.get("STOPPING") == "1" for x in m), timeout=5), \
        notify.messages
    # Readiness first, shutdown last.
    assert notify.messages[0].get("READY") == "1", notify.messages
    assert notify.messages[-1].get("STOPPING") == "1", notify.messages


@pytest.mark.parametrize("watchdog", [{}, {"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}],
                         ids=["no-watchdog", "watchdog-of-another-process"])
def test_collector_pings_no_watchdog_it_was_not_given(tmp_path, notify, monkeypatch, watchdog):
    for k, v in watchdog.items():
        monkeypatch.setenv(k, v)
    c = Collector(tmp_path / "out")
    assert notify.receive(lambda m: any(x.get("READY") == "1" for x in m)), notify.messages
    notify.receive(lambda m: False, timeout=1.0)  # a second of event-loop turns
    assert notify.count("WATCHDOG") == 0, notify.messages
    assert c.stop(signal.SIGTERM) == 0, c.log()
    assert notify.receive(lambda m: any(x.get("STOPPING") == "1" for x in m), timeout=5)


def test_collector_without_notify_socket_runs_as_before(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    c = Collector(tmp_path / "out")
    time.sleep(0.3)
    assert c.stop(signal.SIGTERM) == 0, c.log()
