#!/usr/bin/python3
"""Fails when a source file includes a module its module may not include
(modules.txt at the top of the tree declares the graph), or when the graph
itself lets a module include one at its own level or above."""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
graph_file = root / "modules.txt"
levels, allowed = {}, {}
for n, line in enumerate(graph_file.read_text().splitlines(), 1):
    line = line.split("#", 1)[0].split()
    if not line:
        continue
    module, level, deps = line[0], int(line[1]), line[2:]
    levels[module] = level
    allowed[module] = set(deps)

problems = []
for module, deps in allowed.items():
    for d in deps:
        if d not in levels:
            problems.append(f"modules.txt: {module} may include {d}, which is not a module")
        elif levels[d] >= levels[module]:
            problems.append(f"modules.txt: {module} (level {levels[module]}) may include {d} "
                            f"(level {levels[d]}): a module includes only lower levels")

include = re.compile(r'^\s*#\s*include\s*[<"]sluice/([a-z_]+)/')
checked = 0
for module in levels:
    folder = root / module
    if not folder.is_dir():
        problems.append(f"modules.txt names {module}, but there is no folder {module}/")
        continue
    for f in sorted(folder.rglob("*")):
        if f.suffix not in (".cpp", ".hpp", ".h", ".cc") or not f.is_file():
            continue
        checked += 1
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            m = include.match(line)
            if not m:
                continue
            target = m.group(1)
            if target == module or target in allowed[module]:
                continue
            rel = f.relative_to(root)
            if target not in levels:
                problems.append(f"{rel}:{n}: includes sluice/{target}/, which modules.txt "
                                f"does not declare")
            else:
                problems.append(f"{rel}:{n}: {module} (level {levels[module]}) includes "
                                f"{target} (level {levels[target]}), which modules.txt does "
                                f"not allow")

# Every top-level folder with public sluice headers is a declared module.
for inc in sorted(root.glob("*/include/sluice/*")):
    module = inc.parts[-4] if len(inc.parts) >= 4 else None
    if inc.is_dir() and inc.name not in levels:
        problems.append(f"{inc.relative_to(root)}: a module not in modules.txt")

for p in problems:
    print(p)
print(f"{checked} files checked, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
