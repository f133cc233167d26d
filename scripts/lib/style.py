#!/usr/bin/python3
"""The style group of scripts/test: clang-format (every C/C++ file git
tracks, in check mode) and clang-tidy (.clang-tidy's checks over every module
and tool source; their headers come along) must find nothing. Writes one
JUnit case per tool; exit 1 on any finding.

    style.py BUILD_DIR JUNIT_OUT
"""
import concurrent.futures
import os
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

root = Path(__file__).resolve().parents[2]
build = Path(sys.argv[1])
out = Path(sys.argv[2])
modules = [l.split()[0] for l in (root / "modules.txt").read_text().splitlines()
           if l.strip() and not l.startswith("#")]
tracked = subprocess.run(["git", "ls-files", "*.cpp", "*.hpp", "*.h", "*.c", "*.cc"], cwd=root,
                         capture_output=True, text=True, check=True).stdout.split()
cases = []


def case(name, seconds, problems):
    cases.append((name, seconds, problems))


t = time.time()
unformatted = []
for f in tracked:
    p = subprocess.run(["clang-format", "--dry-run", "-Werror", f], cwd=root,
                       capture_output=True, text=True)
    if p.returncode != 0:
        unformatted.append(f"{f}: not formatted (run: clang-format -i {f})")
case("clang-format", time.time() - t, unformatted)

t = time.time()
sources = [f for f in tracked if f.endswith(".cpp") and f.split("/")[0] in modules]


def tidy(f):
    # rdma-core's ibv_reg_mr macro combines two of its enums, which clang
    # deprecates; it is their header, not sluice's code.
    p = subprocess.run(["clang-tidy", "-p", str(build), "--quiet",
                        "--extra-arg=-Wno-deprecated-enum-enum-conversion", f],
                       cwd=root, capture_output=True, text=True)
    found = [l for l in p.stdout.splitlines() if ": error: " in l or ": warning: " in l]
    return f, p.returncode, found


findings = []
with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
    for f, rc, found in pool.map(tidy, sources):
        findings += found
        if rc != 0 and not found:
            findings.append(f"{f}: clang-tidy exited {rc}")
case("clang-tidy", time.time() - t, sorted(set(findings)))

with open(out, "w") as x:
    x.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n  <testsuite name="style">\n')
    for name, secs, problems in cases:
        x.write(f'    <testcase name={quoteattr(name)} classname="style" time="{secs:.1f}">')
        if problems:
            x.write(f'<failure message={quoteattr(f"{len(problems)} finding(s)")}>'
                    f'{escape(chr(10).join(problems[:200]))}</failure>')
        x.write("</testcase>\n")
    x.write("  </testsuite>\n</testsuites>\n")
bad = [(n, p) for n, _, p in cases if p]
for n, p in bad:
    print(f"{n}: {len(p)} finding(s)")
    for line in p[:50]:
        print("  " + line)
print(f"style: {len(tracked)} files formatted-checked, {len(sources)} sources tidied, "
      f"{sum(len(p) for _, p in bad)} finding(s)")
sys.exit(1 if bad else 0)
