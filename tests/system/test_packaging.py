"""sluice under systemd: sluice-collector's service notifications (sd_notify,
checked against a stand-in NOTIFY_SOCKET, so no systemd is needed), and the
Debian packages: built, lintian-clean, installed, run, removed and purged.

The package tests build both packages from a copy of the tree (several
minutes) and install them into /usr/bin for a moment; they need root and
dpkg-buildpackage, and SLUICE_TEST_PACKAGE=0 skips them. They never touch an
installed sluice: they skip when either package is installed already. The
rest of the suite runs the build tree's programs (conftest.BUILD), never
/usr/bin's."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from collector_helpers import Collector
from conftest import ROOT

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


def mapped_libraries(pid):
    return {Path(line.split()[-1]).name.split(".so")[0]
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if ".so" in line}


def test_collector_loads_libsystemd_and_libpcap_only_when_asked(tmp_path, monkeypatch):
    # Each library loaded at start costs every start (docs/performance.md,
    # "Start-up and size"): libsystemd is loaded for a service manager only,
    # libpcap for a query's filter only.
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    plain = Collector(tmp_path / "plain")
    libs = mapped_libraries(plain.proc.pid)
    assert "libssl" in libs and "libzstd" in libs, libs  # linked ones are there
    assert "libsystemd" not in libs and "libpcap" not in libs, libs
    assert plain.stop(signal.SIGTERM) == 0, plain.log()

    n = NotifySocket()
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", n.path)
        managed = Collector(tmp_path / "managed")
        assert n.receive(lambda m: any(x.get("READY") == "1" for x in m)), n.messages
        assert "libsystemd" in mapped_libraries(managed.proc.pid)
        assert managed.stop(signal.SIGTERM) == 0, managed.log()
    finally:
        n.close()


# ---- the Debian packages ---------------------------------------------------------

PACKAGES = ("sluice", "sluice-collector")
BINARIES = {
    "sluice": ("sluice", "sluice-ctl", "sluice-decode", "sluice-pcapgen"),
    "sluice-collector": ("sluice-collector", "sluice-send", "sluice-query"),
}
UNITS = {"sluice": "sluice@.service", "sluice-collector": "sluice-collector@.service"}
CONFFILES = {
    "sluice": ("/etc/sluice/sluice.toml", "/etc/sluice/sluice.env"),
    "sluice-collector": ("/etc/sluice/collector-default.env",),
}
UNIT_DIR = Path("/lib/systemd/system")


def installed(package):
    p = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package],
                       capture_output=True, text=True)
    return p.returncode == 0 and p.stdout.strip() not in ("", "un")


def package_skip_reason():
    if os.environ.get("SLUICE_TEST_PACKAGE", "1") == "0":
        return "SLUICE_TEST_PACKAGE=0"
    if os.geteuid() != 0:
        return "installing a package needs root"
    for tool in ("dpkg-buildpackage", "dh", "help2man", "lintian", "systemd-analyze"):
        if not shutil.which(tool):
            return f"{tool} is missing (scripts/setup installs it)"
    for p in PACKAGES:
        if installed(p):
            return f"package {p} is installed on this machine: not replacing it"
    return None


def copy_source(dest):
    """The tree as committed plus uncommitted changes, without build output."""
    try:
        names = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], check=True, capture_output=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, dest, symlinks=True,
                        ignore=shutil.ignore_patterns("build*", ".git", "__pycache__", "out"))
        return
    for name in filter(None, (n.decode() for n in names)):
        src = ROOT / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted, not yet committed
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name, follow_symlinks=False)


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    reason = package_skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("deb")
    src = work / "sluice"
    src.mkdir()
    copy_source(src)
    env = dict(os.environ, DEB_BUILD_OPTIONS=f"parallel={os.cpu_count() or 1}")
    log = work / "dpkg-buildpackage.log"
    with open(log, "w") as out:
        p = subprocess.run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, env=env,
                           stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    assert p.returncode == 0, \
        f"dpkg-buildpackage failed ({log}):\n" + "".join(log.read_text().splitlines(True)[-60:])
    shutil.rmtree(src)  # the build tree; the packages are beside it
    found = {}
    for deb in work.glob("*.deb"):
        name = subprocess.run(["dpkg-deb", "-f", str(deb), "Package"], check=True,
                              capture_output=True, text=True).stdout.strip()
        found[name] = deb
    assert set(PACKAGES) <= set(found), found
    return {p: found[p] for p in PACKAGES}


def test_packages_are_lintian_clean(debs):
    # TMPDIR: lintian leaves scratch files behind; keep them with the packages.
    tmp = debs["sluice"].parent / "lintian-tmp"
    tmp.mkdir(exist_ok=True)
    p = subprocess.run(["lintian", "--tag-display-limit", "0"] + [str(d) for d in debs.values()],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, TMPDIR=str(tmp)))
    errors = [l for l in p.stdout.splitlines() if l.startswith("E:")]
    assert not errors, p.stdout + p.stderr
    # Lintian itself ran (exit 2 is its own failure, not a tag).
    assert p.returncode in (0, 1), p.stdout + p.stderr


def test_package_contents(debs):
    for pkg, deb in debs.items():
        files = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True,
                               text=True).stdout
        for b in BINARIES[pkg]:
            assert f"./usr/bin/{b}\n" in files, (pkg, b)
        assert f"./lib/systemd/system/{UNITS[pkg]}\n" in files, pkg
        conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True,
                                   text=True).stdout.split()
        assert sorted(conffiles) == sorted(CONFFILES[pkg]), (pkg, conffiles)
        assert f"./usr/share/doc/{pkg}/docs/operations.md\n" in files, pkg
        for b in BINARIES[pkg]:
            assert f"./usr/share/man/man1/{b}.1.gz\n" in files, (pkg, b)
    # The collector package needs no DPDK.
    depends = subprocess.run(["dpkg-deb", "-f", str(debs["sluice-collector"]), "Depends"],
                             check=True, capture_output=True, text=True).stdout
    assert "librte" not in depends, depends
    # Both programs serve HTTP through civetweb: shlibs puts it in Depends.
    for pkg, deb in debs.items():
        depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], check=True,
                                 capture_output=True, text=True).stdout
        assert "libcivetweb1" in depends, (pkg, depends)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def test_packages_install_run_and_remove(debs):
    user_existed = run(["getent", "passwd", "sluice"]).returncode == 0
    try:
        p = run(["dpkg", "-i"] + [str(d) for d in debs.values()],
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        assert p.returncode == 0, p.stdout + p.stderr

        for pkg in PACKAGES:
            for b in BINARIES[pkg]:
                h = run([f"/usr/bin/{b}", "--help"])
                assert h.returncode == 0 and "usage" in (h.stdout + h.stderr).lower(), (b, h)
            for f in CONFFILES[pkg]:
                assert Path(f).is_file(), f
            assert (UNIT_DIR / UNITS[pkg]).is_file()
        assert Path("/etc/sluice/sluice.toml").read_bytes() == (ROOT / "config/sluice.toml") \
            .read_bytes()
        c = run(["/usr/bin/sluice", "--check-config", "/etc/sluice/sluice.toml"])
        assert c.returncode == 0, c.stdout + c.stderr
        assert run(["getent", "passwd", "sluice"]).returncode == 0, "no user sluice"

        v = run(["systemd-analyze", "verify"] + [str(UNIT_DIR / u) for u in UNITS.values()])
        assert v.returncode == 0 and not v.stdout.strip() and not v.stderr.strip(), \
            v.stdout + v.stderr

        # Remove: programs and units go, conffiles stay until purge.
        p = run(["dpkg", "-r"] + list(PACKAGES))
        assert p.returncode == 0, p.stdout + p.stderr
        for pkg in PACKAGES:
            for b in BINARIES[pkg]:
                assert not Path(f"/usr/bin/{b}").exists(), b
            assert not (UNIT_DIR / UNITS[pkg]).exists()
            for f in CONFFILES[pkg]:
                assert Path(f).is_file(), f"{f} removed before purge"
        p = run(["dpkg", "-P"] + list(PACKAGES))
        assert p.returncode == 0, p.stdout + p.stderr
        for pkg in PACKAGES:
            for f in CONFFILES[pkg]:
                assert not Path(f).exists(), f"{f} left after purge"
            assert not installed(pkg), pkg
        assert not Path("/etc/sluice").exists(), "/etc/sluice left after purge"
    finally:
        run(["dpkg", "-P"] + list(PACKAGES))
        if not user_existed and run(["getent", "passwd", "sluice"]).returncode == 0:
            run(["deluser", "--system", "--quiet", "sluice"])
            run(["delgroup", "--system", "--quiet", "sluice"])
