#!/usr/bin/python3
"""The include checker catches what it must: a module including one at its
level (rdma -> tcp), one above it, an undeclared module, and a graph that
points sideways. Runs the checker on small trees made here."""
import subprocess
import sys
import tempfile
from pathlib import Path

CHECK = Path(__file__).resolve().parent / "check_includes.py"


def run(graph, files):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "modules.txt").write_text(graph)
        for path, text in files.items():
            p = root / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        p = subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True, text=True)
        return p.returncode, p.stdout


GRAPH = "wire 1\nsession 2 wire\ntcp 3 session wire\nrdma 3 session wire\ncollector 4 tcp rdma session wire\n"
BASE = {f"{m}/src/a.cpp": '#include "sluice/wire/x.hpp"\n' for m in ("session", "tcp", "rdma", "collector")}
BASE["wire/src/a.cpp"] = "#include <vector>\n"

failures = []


def expect(name, rc, out, want_rc, want_text=""):
    if rc != want_rc or want_text not in out:
        failures.append(f"{name}: exit {rc}, output:\n{out}")


rc, out = run(GRAPH, BASE)
expect("a clean tree passes", rc, out, 0, "0 problem(s)")
rc, out = run(GRAPH, {**BASE, "rdma/src/b.cpp": '#include "sluice/tcp/sender.hpp"\n'})
expect("rdma including tcp (same level)", rc, out, 1, "rdma/src/b.cpp:1: rdma (level 3) includes tcp")
rc, out = run(GRAPH, {**BASE, "session/include/sluice/session/s.hpp": '#include "sluice/collector/c.hpp"\n'})
expect("session including collector (above)", rc, out, 1, "session (level 2) includes collector")
rc, out = run(GRAPH, {**BASE, "tcp/src/b.cpp": '#  include <sluice/nowhere/x.hpp>\n'})
expect("an undeclared module", rc, out, 1, "sluice/nowhere/, which modules.txt does not declare")
rc, out = run(GRAPH.replace("tcp 3 session wire", "tcp 3 session wire rdma"), BASE)
expect("a sideways edge in the graph", rc, out, 1, "tcp (level 3) may include rdma (level 3)")

for f in failures:
    print(f)
print(f"{5 - len(failures)} of 5 cases as expected")
sys.exit(1 if failures else 0)
