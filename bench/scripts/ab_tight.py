#!/usr/bin/env python3
# bench/scripts/ab_tight.py — A/B of the allocator's fast path between two builds (e.g. before and after a change):
# starts pair64-tight's kmem loop as a child of each build's benchmark program (the hidden tracking-off child mode,
# KMEMLEAK=off), asks them for repetitions in alternating order and prints the medians and their ratio.
# usage: bench/scripts/ab_tight.py OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]   (build both with -c Release first)
import os
import statistics
import subprocess
import sys


def start(checkout):
    dll = os.path.join(checkout, "bench/Kmem.Benchmarks/bin/Release/net10.0/Kmem.Benchmarks.dll")
    p = subprocess.Popen(["dotnet", dll, "quick-child-tracking-off", "2000000"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=dict(os.environ, KMEMLEAK="off"))
    if p.stdout.readline().strip() != "ready":
        sys.exit(f"{checkout}: the benchmark child did not start")
    return p


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__ or "usage: ab_tight.py OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]")
    rounds = int(sys.argv[3]) if len(sys.argv) == 4 else 30
    children = {"old": start(sys.argv[1]), "new": start(sys.argv[2])}
    samples = {"old": [], "new": []}
    for i in range(rounds):
        for name in (("old", "new") if i % 2 == 0 else ("new", "old")):
            child = children[name]
            child.stdin.write("run\n")
            child.stdin.flush()
            samples[name].append(float(child.stdout.readline()))
    for child in children.values():
        child.stdin.close()
        child.wait()
    for name, values in samples.items():
        print(f"{name}: median {statistics.median(values):.2f} ns per pair (min {min(values):.2f}, max {max(values):.2f})")
    print(f"new/old {statistics.median(samples['new']) / statistics.median(samples['old']):.3f}")


if __name__ == "__main__":
    main()
