#!/usr/bin/python3
"""Print the ninja targets (paths relative to the build dir) of the test
programs in a meson suite, so a sanitizer build compiles only those."""
import json
import os
import subprocess
import sys

build, suite = os.path.abspath(sys.argv[1]), sys.argv[2]
tests = json.loads(subprocess.check_output(["meson", "introspect", build, "--tests"]))
targets = set()
for t in tests:
    # meson prefixes suites with the project name: "sluice:asan".
    suites = {s.split(":", 1)[-1] for s in t.get("suite", [])}
    if suite and suite not in suites:
        continue
    prog = t["cmd"][0]
    if prog.startswith(build + os.sep):
        targets.add(os.path.relpath(prog, build))
for target in sorted(targets):
    print(target)
