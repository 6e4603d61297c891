#!/usr/bin/env python3
"""Sums a clang -ftime-trace JSON file: where a translation unit's compile time goes.

    clang++ -O2 -std=c++20 -Iinclude -I/usr/include/eigen3 -ftime-trace -c FILE.cpp -o FILE.o
    scripts/time-trace-summary.py FILE.json [TOP]

Prints the front-end / back-end split, the headers by inclusive parse time ("Source" events:
a header's time includes the headers it includes), and the functions that took longest to
instantiate (front end) and to optimise (back end). TOP (default 15) rows per table.
"""
import collections
import json
import sys


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    top = int(sys.argv[2]) if len(sys.argv) == 3 else 15
    with open(sys.argv[1], encoding="utf-8") as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]

    totals = {e["name"]: e["dur"] / 1e6 for e in events if e["name"].startswith("Total ")}
    print("seconds  phase")
    for name in ("Total ExecuteCompiler", "Total Frontend", "Total Backend", "Total Source",
                 "Total InstantiateFunction", "Total InstantiateClass", "Total OptFunction"):
        if name in totals:
            print(f"{totals[name]:7.2f}  {name[6:]}")

    def table(title: str, event: str) -> None:
        sums: collections.Counter = collections.Counter()
        for e in events:
            if e["name"] == event:
                sums[e.get("args", {}).get("detail", "")] += e["dur"] / 1e6
        print(f"\nseconds  {title}")
        for detail, seconds in sums.most_common(top):
            print(f"{seconds:7.2f}  {detail[:160]}")

    table("header (inclusive parse time)", "Source")
    table("function instantiated (front end)", "InstantiateFunction")
    table("function optimised (back end, mangled)", "OptFunction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
