#!/usr/bin/python3
"""Count test cases across JUnit files (meson's gtest logs, pytest) and print
`N passed, N failed[, N skipped]`. A test program that crashed before writing
its cases counts as one failure, named, so nothing fails silently."""
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
failures = []


def count_junit(path: Path):
    global passed, failed, skipped
    root = ET.parse(path).getroot()
    suites_with_cases = set()
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            name = f"{suite.get('name')}::{case.get('classname')}.{case.get('name')}"
            suites_with_cases.add(suite.get("name"))
            if case.get("status") == "notrun":
                continue                       # DISABLED_ gtest cases
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(name)
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return suites_with_cases


def count_meson(build: Path):
    """meson's junit has gtest cases; its json says which programs failed."""
    global failed, passed
    junit = build / "meson-logs" / "testlog.junit.xml"
    if junit.exists():
        count_junit(junit)
    log = build / "meson-logs" / "testlog.json"
    if not log.exists():
        return
    for line in log.read_text().splitlines():
        t = json.loads(line)
        stdout = t.get("stdout", "") or ""
        is_gtest = "[==========]" in stdout or "Running main() from" in stdout
        if is_gtest and t["result"] in ("OK", "SKIP"):
            continue
        if not is_gtest and t["result"] not in ("TIMEOUT", "ERROR", "INTERRUPT"):
            # plain exit-code tests count once
            if t["result"] == "OK":
                passed += 1
            elif t["result"] == "SKIP":
                pass
            else:
                failed += 1
                failures.append(f"{build.name}::{t['name']} ({t['result']})")
            continue
        # a gtest program that failed: its cases are counted from junit unless it
        # crashed/timed out before gtest wrote them - then count the program.
        if t["result"] in ("TIMEOUT", "ERROR", "FAIL", "INTERRUPT"):
            if "[  FAILED  ]" not in stdout:
                failed += 1
                failures.append(f"{build.name}::{t['name']} ({t['result']}, crashed or timed out)")


for arg in sys.argv[1:]:
    p = Path(arg)
    if p.is_dir():
        count_meson(p)
    elif p.exists():
        count_junit(p)
    else:
        failed += 1
        failures.append(f"{arg}: results missing (the group did not run)")

if failures:
    print("failed:")
    for f in failures:
        print(f"  {f}")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
