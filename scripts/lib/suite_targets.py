#!/usr/bin/python3
"""Print the ninja targets (relative paths) of the test programs in a suite."""
import json
import os
import subprocess
import sys

build, suite = sys.argv[1], sys.argv[2]
tests = json.loads(subprocess.check_output(["meson", "introspect", build, "--tests"]))
targets = set()
for t in tests:
    if suite and suite not in t.get("suite", []):
        continue
    for dep in t.get("depends", []):
        pass
    prog = t["cmd"][0]
    if prog.startswith(os.path.abspath(build)):
        targets.add(os.path.relpath(prog, build))
print("\n".join(sorted(targets)))
