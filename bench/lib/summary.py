"""The results `scripts/bench all` gathers into one table of ratios against
goals. A group's run script calls record() for each figure it has a goal (or
a peer) for; when $SLUICE_BENCH_SUMMARY names a file, each call appends one
JSON line to it, otherwise record() does nothing, so a group run alone
prints only its own tables.

  record("tcp", "collector end to end vs iperf3", 0.41, ">=", 0.6,
         sluice="7.6 Gbit/s", peer="iperf3: 18.5 Gbit/s", spread="0.35-0.44")

From a shell script: python3 bench/lib/summary.py GROUP CASE RATIO [OP GOAL] [key=value...]
"""
import json
import math
import os
import sys

OPS = {">=": lambda v, g: v >= g, "<=": lambda v, g: v <= g}


def spread(xs, worst=min):
    """The spread of per-pair or per-round figures: the 25th-75th percentile
    and the worst of them (min, or max for a figure that must stay low)."""
    xs = sorted(xs)
    if not xs:
        return ""
    q = lambda f: xs[min(len(xs) - 1, int(round(f * (len(xs) - 1))))]
    return f"{q(0.25):.2f}-{q(0.75):.2f}, {worst.__name__} {worst(xs):.2f}"


def met(value, op, goal):
    if op is None or goal is None or value is None or math.isnan(value):
        return None
    return OPS[op](value, goal)


def record(group, case, value, op=None, goal=None, *, unit="x", sluice="", peer="", spread="",
           note=""):
    """One figure: `value` (a ratio to its peer, unit "x", or a figure with
    its unit) and, when it has one, the goal it must meet (`op` ">=" or
    "<=", `goal`)."""
    path = os.environ.get("SLUICE_BENCH_SUMMARY")
    if not path:
        return
    if value is not None and not isinstance(value, (int, float)):
        raise TypeError(f"summary.record: value of {case!r} is not a number")
    if op is not None and op not in OPS:
        raise ValueError(f"summary.record: op must be one of {list(OPS)}")
    line = {"group": group, "case": case,
            "value": None if value is None or math.isnan(value) else float(value),
            "unit": unit, "op": op, "goal": goal, "met": met(value, op, goal),
            "sluice": sluice, "peer": peer, "spread": spread, "note": note}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    group, case, value = argv[0], argv[1], float(argv[2])
    rest = argv[3:]
    op = goal = None
    if len(rest) >= 2 and rest[0] in OPS:
        op, goal, rest = rest[0], float(rest[1]), rest[2:]
    extra = dict(kv.split("=", 1) for kv in rest)
    record(group, case, value, op, goal, **extra)


if __name__ == "__main__":
    main(sys.argv[1:])
