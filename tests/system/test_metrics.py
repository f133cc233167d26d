"""Prometheus metrics of both programs: sluice ([stats] prometheus) and
sluice-collector (--metrics). promtool accepts what each serves, and a real
Prometheus server, configured here on loopback ports, scrapes both and
answers a query for the drop counters: packets dropped by sluice while its
collector was frozen, and the same packets counted lost by the collector.
Nothing is timed: each wait polls until its condition holds, under a
generous deadline."""
import json
import signal
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

from collector_helpers import Collector, free_port, promtool_check, read_stream
from collector_helpers import metric_samples as samples
from conftest import EAL, Running, write_config

PROMETHEUS = "/usr/bin/prometheus"


def fetch(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def total(values, metric):
    """Sum of a metric over its label sets."""
    return sum(v for k, v in values.items() if k == metric or k.startswith(metric + "{"))


def wait_until(what, condition, timeout=120):
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


class Prometheus:
    """A Prometheus server scraping `targets` every second, on loopback."""

    def __init__(self, tmp, targets):
        self.port = free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(textwrap.dedent(f"""\
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: sluice
                static_configs:
                  - targets: {json.dumps(targets)}
            """))
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    def query(self, expr):
        """The instant vector's samples as {labels-json: value}."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?" +
               urllib.parse.urlencode({"query": expr}))
        try:
            r = json.loads(fetch(url))
        except OSError:
            return {}  # not up yet
        assert r["status"] == "success", r
        return {json.dumps(s["metric"], sort_keys=True): float(s["value"][1])
                for s in r["data"]["result"]}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def sluice_config(pcap, port, summary, metrics_port):
    return textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_pcap={pcap}"
        mtu = 9000
        timestamps = "hardware"
        [lcores]
        rx = [1]
        [mempool]
        frame_buffers = 16
        [batch]
        frame_size = 65536
        [egress]
        type = "tcp"
        address = "127.0.0.1:{port}"
        reconnect_min_ms = 50
        reconnect_max_ms = 400
        retransmit_frames = 8
        timeout_ms = 1000
        [stats]
        interval_s = 0
        summary_json = "{summary}"
        prometheus = "127.0.0.1:{metrics_port}"
        """)


def test_prometheus_scrapes_both_and_answers_for_the_drop_counters(tmp_path, pcapgen):
    pcap = pcapgen(packets=20000, seed=33)
    out = tmp_path / "out"
    cport, sport = free_port(), free_port()
    col = Collector(out, args=["--metrics", f"127.0.0.1:{cport}"])
    summary = tmp_path / "sluice.json"
    cfg = write_config(tmp_path, sluice_config(pcap, col.port, summary, sport))
    prom = Prometheus(tmp_path, [f"127.0.0.1:{sport}", f"127.0.0.1:{cport}"])
    sluice = None
    try:
        # The collector frozen while sluice captures: the retransmit buffer
        # fills and, with the drop policy, the rest is dropped and counted.
        col.proc.send_signal(signal.SIGSTOP)
        try:
            sluice = Running(EAL + ["--", "--config", str(cfg)], timeout=60)
            assert sluice.wait_for(f"metrics on http://127.0.0.1:{sport}/metrics", 30)
            wait_until("sluice to receive every packet and drop some", lambda: (
                lambda m: total(m, "sluice_port_ipackets_total") == 20000 and
                m["sluice_dropped_total"] > 0)(samples(fetch(f"http://127.0.0.1:{sport}/metrics"))))
        finally:
            col.proc.send_signal(signal.SIGCONT)

        def settled():
            s = samples(fetch(f"http://127.0.0.1:{sport}/metrics"))
            frames, done = (total(s, "sluice_egress_frames_total"),
                            total(s, "sluice_egress_frames_done_total"))
            out = total(s, "sluice_egress_packets_total") + s["sluice_dropped_total"]
            return s if frames == done and out == 20000 else None
        s = wait_until("every packet sent and acknowledged, or dropped", settled)
        dropped = s["sluice_dropped_total"]
        assert dropped > 0, "the collector was never too slow"
        promtool_check(fetch(f"http://127.0.0.1:{sport}/metrics"))
        promtool_check(fetch(f"http://127.0.0.1:{cport}/metrics"))

        # Prometheus answers with what sluice says ...
        def answered(expr, value):
            r = prom.query(expr)
            return r if list(r.values()) == [value] else None
        a = wait_until("Prometheus to hold sluice's drop counter",
                       lambda: answered("sluice_dropped_total", dropped), timeout=180)
        assert json.loads(next(iter(a)))["instance"] == f"127.0.0.1:{sport}"
        up = wait_until("both targets up", lambda: answered("sum(up)", 2.0))
        assert up
        rc, _, err = sluice.stop()
        assert rc == 0, err
        # ... and with what the collector says: the same packets, lost.
        lost = 'sluice_collector_stream_packets_lost_total{stream="1"}'
        wait_until("the collector to count the loss", lambda: samples(
            fetch(f"http://127.0.0.1:{cport}/metrics")).get(lost) == dropped)
        b = wait_until("Prometheus to hold the collector's loss counter",
                       lambda: answered(lost, dropped), timeout=180)
        assert json.loads(next(iter(b)))["instance"] == f"127.0.0.1:{cport}"
    finally:
        if sluice:
            sluice.kill()
        prom.stop()
    assert col.stop() == 0
    final = json.loads(summary.read_text())
    assert final["dropped"] == dropped
    assert col.stream(1)["run"]["packets_lost"] == dropped
    assert col.stream(1)["run"]["packets_written"] == len(read_stream(out, 1)) == 20000 - dropped


def test_metrics_are_served_off_the_worker_lcores(tmp_path, pcapgen):
    """The HTTP threads run where the main lcore's thread runs (lcore 0's
    CPU here), never on the worker lcore's CPU (1)."""
    pcap = pcapgen(packets=100)
    sport = free_port()
    cfg = write_config(tmp_path, textwrap.dedent(f"""\
        [[ports]]
        name = "net_pcap0,rx_pcap={pcap},infinite_rx=1"
        [lcores]
        rx = [1]
        [egress]
        type = "null"
        [stats]
        interval_s = 0
        prometheus = "127.0.0.1:{sport}"
        """))
    sluice = Running(EAL + ["--", "--config", str(cfg)], timeout=60)
    try:
        text = fetch(f"http://127.0.0.1:{sport}/metrics")
        promtool_check(text)
        assert "sluice_queue_rx_packets_total{port=\"0\",queue=\"0\",lcore=\"1\"}" in text
        tasks = Path(f"/proc/{sluice.proc.pid}/task")
        http_threads = [t for t in tasks.iterdir()
                        if (t / "comm").read_text().startswith("civetweb")]
        assert http_threads, [(t / "comm").read_text() for t in tasks.iterdir()]
        for t in http_threads:
            allowed = [l for l in (t / "status").read_text().splitlines()
                       if l.startswith("Cpus_allowed_list:")][0].split()[1]
            assert allowed == "0", f"{(t / 'comm').read_text().strip()} may run on {allowed}"
        rc, _, err = sluice.stop()
        assert rc == 0, err
    finally:
        sluice.kill()


def test_a_bad_prometheus_address_is_a_config_error(tmp_path):
    from conftest import run_sluice
    cfg = write_config(tmp_path, textwrap.dedent("""\
        [[ports]]
        name = "net_null0"
        [lcores]
        rx = [1]
        [egress]
        type = "null"
        [stats]
        prometheus = "localhost"
        """))
    p = run_sluice(["--check-config", str(cfg)])
    assert p.returncode == 2
    assert "stats.prometheus" in p.stderr and "expected ADDR:PORT" in p.stderr


def test_a_closed_stream_keeps_its_metrics(tmp_path, pcapgen):
    """With --max-streams 1, a second stream closes the first (it has no
    sender): the first's counters stay, with connected 0."""
    from collector_helpers import send
    pcap = pcapgen(packets=200, seed=34)
    mport = free_port()
    col = Collector(tmp_path / "out", args=["--metrics", f"127.0.0.1:{mport}",
                                            "--max-streams", "1"])
    for stream in (1, 2):
        p, _ = send(pcap, col.port, stream_id=stream)
        assert p.returncode == 0, p.stderr
    url = f"http://127.0.0.1:{mport}/metrics"
    # The streams' totals are republished by the event loop every 100 ms.
    s = wait_until("both streams in the metrics", lambda: (lambda m: m if m.get(
        'sluice_collector_stream_packets_written_total{stream="2"}') == 200 else None)(
            samples(fetch(url))))
    assert s["sluice_collector_streams_retired_total"] == 1, (s, col.log())
    assert s['sluice_collector_stream_packets_written_total{stream="1"}'] == 200
    assert s['sluice_collector_stream_connected{stream="1"}'] == 0
    promtool_check(fetch(url))
    assert col.stop() == 0
