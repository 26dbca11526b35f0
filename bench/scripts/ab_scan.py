#!/usr/bin/env python3
# bench/scripts/ab_scan.py — A/B of the leak scan between two builds: for each pair, one leakbench child of the old build
# then one of the new (alternating, never at once), each building the leakbench heap and scanning it SCANS times; a
# child's figure is the median of its scans 3..SCANS (scan 1 primes the checksums, scan 2 reports the leaks first).
# usage: bench/scripts/ab_scan.py OLD_CHECKOUT NEW_CHECKOUT [PAIRS [OBJECTS [SCANS]]]   (build both with -c Release)
#   defaults: 6 pairs, 1000000 objects, 12 scans. Prints each child's medians (ns/object for the whole scan; ms for
#   GC, process roots, marking, classification) and the medians over the pairs.
import os
import re
import statistics
import subprocess
import sys

SCAN = re.compile(r"scan (\d+) [\d.]+ s = +(\d+) ns")
PARTS = re.compile(r"GC ([\d.]+) ms, process roots ([\d.]+) ms.*marking ([\d.]+) ms, classification ([\d.]+) ms")


def child(checkout, objects, scans):
    dll = os.path.join(checkout, "bench/Kmem.Benchmarks/bin/Release/net10.0/Kmem.Benchmarks.dll")
    out = subprocess.run(["dotnet", dll, "quick-child-leakbench", str(objects), str(scans)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{checkout}: the leakbench child failed ({out.returncode}): {out.stderr.strip() or out.stdout[-500:]}")
    ns, parts, current = [], [], 0
    for line in out.stdout.splitlines():
        if m := SCAN.search(line):
            current = int(m.group(1))
            if current >= 3:
                ns.append(int(m.group(2)))
        elif (m := PARTS.search(line)) and current >= 3:
            parts.append([float(x) for x in m.groups()])
    return [statistics.median(ns)] + [statistics.median(column) for column in zip(*parts)]


def main():
    if not 3 <= len(sys.argv) <= 6:
        sys.exit("usage: ab_scan.py OLD_CHECKOUT NEW_CHECKOUT [PAIRS [OBJECTS [SCANS]]]")
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    objects = int(sys.argv[4]) if len(sys.argv) > 4 else 1000000
    scans = int(sys.argv[5]) if len(sys.argv) > 5 else 12
    results = {"old": [], "new": []}
    names = ["ns/object", "gc ms", "roots ms", "marking ms", "classification ms"]
    for i in range(pairs):
        for name, checkout in (("old", sys.argv[1]), ("new", sys.argv[2])):
            figures = child(checkout, objects, scans)
            results[name].append(figures)
            print(f"pair {i + 1} {name}: " + ", ".join(f"{n} {v:.1f}" for n, v in zip(names, figures)), flush=True)
    for name in ("old", "new"):
        medians = [statistics.median(column) for column in zip(*results[name])]
        print(f"{name} (median of {pairs}): " + ", ".join(f"{n} {v:.1f}" for n, v in zip(names, medians)))


main()
