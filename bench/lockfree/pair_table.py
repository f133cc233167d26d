#!/usr/bin/python3
"""Turn a Google Benchmark JSON file of interleaved pairs into a table of medians and ratios.

Benchmark names look like GROUP/PARAM/pair:N/IMPL[/...]. For every GROUP/PARAM the table gives
each implementation's median and, for each non-baseline implementation, the median (and the
25th-75th percentile range) of the pair-by-pair ratios against the baseline of the same pair.

  pair_table.py FILE.json --baseline rte_ring --metric rate   # items/s, ratio = impl/baseline
  pair_table.py FILE.json --baseline rte_mempool --metric cost  # ns/item, ratio = impl/baseline
"""
import argparse
import json
import re
import statistics
import sys
from collections import OrderedDict, defaultdict

NAME = re.compile(r"^(?P<group>[^/]+)/(?P<param>[^/]+)/pair:(?P<pair>\d+)/(?P<impl>[^/]+)")


def quantile(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--metric", choices=["rate", "cost"], required=True)
    ap.add_argument("--extra", action="append", default=[], metavar="NUM:DEN",
                    help="also report the median pair ratio NUM/DEN of two implementations")
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


if __name__ == "__main__":
    main()
