"""A NATS JetStream cluster on loopback for the tests: nats-server processes
with configurations written by the test, started, killed (SIGKILL) and
restarted one by one. A missing nats-server, or a cluster that does not
become ready, fails the test with a message saying so instead of hanging."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

_running = []  # servers started by tests; conftest kills leftovers


def nats_server_binary():
    """The nats-server program: $SLUICE_NATS_SERVER, else on PATH or in /usr/sbin."""
    path = os.environ.get("SLUICE_NATS_SERVER") or shutil.which("nats-server") or \
        ("/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None)
    if not path or not Path(path).exists():
        raise RuntimeError(
            f"nats-server not found ({path or 'not on PATH, not in /usr/sbin'}): the JetStream "
            "tests need it. Install the Debian package nats-server (scripts/setup does), or "
            "point SLUICE_NATS_SERVER at the binary")
    return path


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    """`size` nats-servers with JetStream, clustered over loopback routes."""

    def __init__(self, root, size=3, name="sluice-test"):
        self.binary = nats_server_binary()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.size = size
        ports = free_ports(3 * size)
        self.client_ports = ports[:size]
        self.route_ports = ports[size:2 * size]
        self.monitor_ports = ports[2 * size:]
        self.procs = [None] * size
        self.logs = [self.root / f"n{i}.log" for i in range(size)]
        self.configs = []
        for i in range(size):
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in
                               enumerate(self.route_ports) if j != i)
            cluster = "" if size == 1 else f"""
cluster {{
  name: {name}
  listen: 127.0.0.1:{self.route_ports[i]}
  routes: [{routes}]
}}"""
            conf = self.root / f"n{i}.conf"
            # SLUICE_NATS_DEBUG=1: the servers log every client they close and why.
            debug = "debug: true\n" if os.environ.get("SLUICE_NATS_DEBUG") else ""
            conf.write_text(debug + f"""server_name: n{i}
listen: 127.0.0.1:{self.client_ports[i]}
http: 127.0.0.1:{self.monitor_ports[i]}
jetstream {{
  store_dir: "{self.root / f'store{i}'}"
  max_memory_store: 64MB
  max_file_store: 4GB
}}{cluster}
""")
            self.configs.append(conf)
        _running.append(self)

    def url(self, nodes=None):
        nodes = range(self.size) if nodes is None else nodes
        return "jetstream://" + ",".join(f"127.0.0.1:{self.client_ports[i]}" for i in nodes)

    def start(self, i=None, timeout=30):
        for n in ([i] if i is not None else range(self.size)):
            self.procs[n] = subprocess.Popen([self.binary, "-c", str(self.configs[n])],
                                             stdout=subprocess.DEVNULL,
                                             stderr=open(self.logs[n], "a"))
        self.wait_ready(timeout, [i] if i is not None else range(self.size))
        return self

    def kill(self, i):
        """SIGKILL: no goodbye to the cluster, no flush."""
        p = self.procs[i]
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.procs[i] = None

    def stop(self):
        for i, p in enumerate(self.procs):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            self.procs[i] = None
        if self in _running:
            _running.remove(self)

    def healthy(self, i):
        """The server answers, and its JetStream (with a meta leader, in a cluster) too."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_ports[i]}/healthz",
                                        timeout=1) as r:
                if json.loads(r.read()).get("status") != "ok":
                    return False
            if self.size == 1:
                return True
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_ports[i]}/jsz",
                                        timeout=1) as r:
                meta = json.loads(r.read()).get("meta_cluster") or {}
                return bool(meta.get("leader"))
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout, nodes):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for n in nodes:
                if self.procs[n].poll() is not None:
                    raise RuntimeError(f"nats-server n{n} exited with {self.procs[n].returncode}:\n"
                                       + self.logs[n].read_text()[-3000:])
            if all(self.healthy(n) for n in nodes):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the NATS cluster did not become ready within {timeout} s:\n" +
                           "\n".join(f"--- n{n}\n" + self.logs[n].read_text()[-2000:]
                                     for n in nodes))

    def stream_leader(self, stream="SLUICE"):
        """The server leading the stream's replicas, as the cluster says."""
        for i in range(self.size):
            if not self.procs[i]:
                continue
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.monitor_ports[i]}/jsz?streams=true",
                        timeout=1) as r:
                    for acc in json.loads(r.read()).get("account_details", []):
                        for s in acc.get("stream_detail", []):
                            if s.get("name") == stream and s.get("cluster", {}).get("leader"):
                                return int(s["cluster"]["leader"][1:])
            except (OSError, ValueError):
                continue
        return None
