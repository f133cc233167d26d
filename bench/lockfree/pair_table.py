#!/usr/bin/python3
"""Turn a Google Benchmark JSON file of interleaved pairs into a table of medians and ratios.

Benchmark names look like GROUP/PARAM/pair:N/IMPL[/...]. For every GROUP/PARAM the table gives
each implementation's median and, for each non-baseline implementation, the median (and the
25th-75th percentile range) of the pair-by-pair ratios against the baseline of the same pair.

  pair_table.py FILE.json --baseline rte_ring --metric rate   # items/s, ratio = impl/baseline
  pair_table.py FILE.json --baseline rte_mempool --metric cost  # ns/item, ratio = impl/baseline

With --summary-group NAME, each --goal 'GROUP/PARAM/IMPL OP VALUE [CASE]' records (bench/lib/
summary.py) the median pair ratio of IMPL against the baseline in GROUP/PARAM, or, when IMPL is
NUM/DEN, the ratio of those two implementations (as --extra NUM:DEN reports it). PARAM is the
name's second part ("burst:32") or what follows its colon ("32"); CASE names the figure (by
default "IMPL vs BASELINE, GROUP, PARAM").
"""
import argparse
import json
import re
import statistics
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import summary  # noqa: E402

NAME = re.compile(r"^(?P<group>[^/]+)/(?P<param>[^/]+)/pair:(?P<pair>\d+)/(?P<impl>[^/]+)")


def quantile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def parse_goal(text):
    """'GROUP/PARAM/IMPL OP VALUE [CASE]' -> (group, param, num, den or None, op, goal, case)."""
    parts = text.split(None, 3)
    if len(parts) < 3 or parts[1] not in summary.OPS:
        sys.exit(f"--goal {text!r}: expected 'GROUP/PARAM/IMPL OP VALUE [CASE]', "
                 f"OP one of {list(summary.OPS)}")
    spec = parts[0].split("/", 2)
    if len(spec) != 3:
        sys.exit(f"--goal {text!r}: expected GROUP/PARAM/IMPL (or GROUP/PARAM/NUM/DEN)")
    group, param, impl = spec
    num, _, den = impl.replace(":", "/").partition("/")
    return (group, param, num, den or None, parts[1], float(parts[2]),
            parts[3] if len(parts) > 3 else None)


def record_goals(args, table, unit):
    """One summary record per --goal: the median pair ratio, its spread and both medians."""
    goals = [parse_goal(g) for g in args.goal]
    # In a NUM/DEN goal, the side also named alone in another goal is sluice's.
    named = {num for _, _, num, den, _, _, _ in goals if den is None}
    for group, param, num, den, op, goal, case in goals:
        key = next((k for k in table if k[0] == group and
                    (k[1] == param or k[1].split(":", 1)[-1] == param)), None)
        peer_impl = den or args.baseline
        if case is None:
            case = (f"{num} vs {peer_impl}, {group.replace('_', ' ')}, "
                    f"{(key[1] if key else param).replace(':', ' ')}")
        by_impl = table[key] if key else {}
        a, b = by_impl.get(num, {}), by_impl.get(peer_impl, {})
        ratios = [a[p][0] / b[p][0] for p in a if p in b]
        if not ratios:
            summary.record(args.summary_group, case, float("nan"), op, goal,
                           note="no result (filtered out or failed)")
            continue
        ours, theirs = (num, peer_impl) if den is None or num in named or den not in named \
            else (den, num)
        med = {i: f"{statistics.median(v for v, _ in by_impl[i].values()):.2f} {unit}"
               for i in (ours, theirs)}
        d = 1 if statistics.median(ratios) >= 10 else 2
        worst = f"min {min(ratios):.{d}f}" if op == ">=" else f"max {max(ratios):.{d}f}"
        summary.record(args.summary_group, case, statistics.median(ratios), op, goal,
                       sluice=med[ours], peer=f"{theirs}: {med[theirs]}",
                       spread=f"{quantile(ratios, 0.25):.{d}f}-{quantile(ratios, 0.75):.{d}f}, "
                              f"{worst}", note=args.summary_note)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--metric", choices=["rate", "cost"], required=True)
    ap.add_argument("--extra", action="append", default=[], metavar="NUM:DEN",
                    help="also report the median pair ratio NUM/DEN of two implementations")
    ap.add_argument("--summary-group", metavar="NAME",
                    help="record each --goal's figure for scripts/bench all (bench/lib/summary.py)")
    ap.add_argument("--goal", action="append", default=[], metavar="'GROUP/PARAM/IMPL OP VALUE'",
                    help="a goal to record with --summary-group, e.g. "
                         "'two_threads/32/SpscRing >= 1.3' (IMPL may be NUM/DEN)")
    ap.add_argument("--summary-note", default="", metavar="TEXT",
                    help="a note for every recorded figure")
    args = ap.parse_args()

    data = json.load(open(args.json))
    # (group, param) -> impl -> pair -> (value, preempted)
    table = OrderedDict()
    impls = []
    for b in data["benchmarks"]:
        m = NAME.match(b["name"])
        if not m or b.get("error_occurred"):
            if b.get("error_occurred"):
                print(f"error in {b['name']}: {b.get('error_message')}", file=sys.stderr)
            continue
        ips = b.get("items_per_second")
        if not ips:
            continue
        value = ips / 1e6 if args.metric == "rate" else 1e9 / ips
        key = (m["group"], m["param"])
        table.setdefault(key, defaultdict(dict))[m["impl"]][int(m["pair"])] = (
            value, b.get("preempted", 0))
        if m["impl"] not in impls:
            impls.append(m["impl"])
    if args.baseline not in impls:
        sys.exit(f"no results for the baseline {args.baseline}")
    others = [i for i in impls if i != args.baseline]
    unit = "M/s" if args.metric == "rate" else "ns"
    head = ["group", "param"] + [f"{i} ({unit})" for i in impls]
    extras = [tuple(e.split(":", 1)) for e in args.extra]
    head += [f"{i} / {args.baseline}" for i in others]
    head += [f"{num} / {den}" for num, den in extras] + ["pairs", "preempted runs"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (group, param), by_impl in table.items():
        base = by_impl[args.baseline]
        row = [group, param]
        for i in impls:
            vals = [v for v, _ in by_impl[i].values()]
            row.append(f"{statistics.median(vals):.2f}" if vals else "-")
        for i in others:
            ratios = [by_impl[i][p][0] / base[p][0] for p in base if p in by_impl[i]]
            if ratios:
                row.append(f"**{statistics.median(ratios):.2f}x** "
                           f"({quantile(ratios, 0.25):.2f}-{quantile(ratios, 0.75):.2f})")
            else:
                row.append("-")
        for num, den in extras:
            a, b = by_impl.get(num, {}), by_impl.get(den, {})
            ratios = [a[p][0] / b[p][0] for p in a if p in b]
            row.append(f"**{statistics.median(ratios):.1f}x** "
                       f"({quantile(ratios, 0.25):.1f}-{quantile(ratios, 0.75):.1f})"
                       if ratios else "-")
        row.append(str(len(base)))
        preempted = sum(1 for i in impls for _, pre in by_impl[i].values() if pre)
        row.append(str(preempted))
        print("| " + " | ".join(row) + " |")
    if args.summary_group:
        record_goals(args, table, unit)


if __name__ == "__main__":
    main()
