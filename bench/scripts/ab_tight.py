#!/usr/bin/env python3
# bench/scripts/ab_tight.py — A/B of the allocator between two builds (e.g. before and after a change): starts the
# benchmark program of each build in its hidden KMEMLEAK=off child mode, asks both for repetitions of one allocation
# workload in alternating order, and prints the medians and their ratio.
# usage: bench/scripts/ab_tight.py [--tracking] OLD_CHECKOUT NEW_CHECKOUT [ROUNDS] [WORKLOAD [OPS]]   (build both with -c Release)
#   WORKLOAD: pair64-tight (default), pair64-batch1000, mixed, producer-consumer; OPS per repetition (default 2000000)
#   --tracking: the children run with leak tracking on (KMEM_BENCH_CHILD_TRACKING=1); both builds' benchmark programs
#   must accept it (commits from 25bd53b on; for an older one, apply that commit's change to Quick/KmemChild.cs)
import os
import statistics
import subprocess
import sys


TRACKING = "--tracking" in sys.argv
if TRACKING:
    sys.argv.remove("--tracking")


def start(checkout):
    dll = os.path.join(checkout, "bench/Kmem.Benchmarks/bin/Release/net10.0/Kmem.Benchmarks.dll")
    if TRACKING:
        env = {k: v for k, v in os.environ.items() if k != "KMEMLEAK"}
        env["KMEM_BENCH_CHILD_TRACKING"] = "1"
    else:
        env = {k: v for k, v in os.environ.items() if k != "KMEM_BENCH_CHILD_TRACKING"}
        env["KMEMLEAK"] = "off"
    p = subprocess.Popen(["dotnet", dll, "quick-child-tracking-off", "2000000"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    if p.stdout.readline().strip() != "ready":
        sys.exit(f"{checkout}: the benchmark child did not start")
    return p


def ask(child, command):
    child.stdin.write(command + "\n")
    child.stdin.flush()
    answer = child.stdout.readline().strip()
    if answer.startswith("error"):
        sys.exit(answer)
    return answer


def main():
    if not 3 <= len(sys.argv) <= 6:
        sys.exit("usage: ab_tight.py [--tracking] OLD_CHECKOUT NEW_CHECKOUT [ROUNDS] [WORKLOAD [OPS]]")
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    workload = sys.argv[4] if len(sys.argv) > 4 else "pair64-tight"
    ops = sys.argv[5] if len(sys.argv) > 5 else "2000000"
    children = {"old": start(sys.argv[1]), "new": start(sys.argv[2])}
    for child in children.values():
        ask(child, f"warm {workload} {ops}")
    samples = {"old": [], "new": []}
    for i in range(rounds):
        for name in (("old", "new") if i % 2 == 0 else ("new", "old")):
            samples[name].append(float(ask(children[name], f"run {workload} {ops}")))
    for child in children.values():
        child.stdin.close()
        child.wait()
    for name, values in samples.items():
        print(f"{workload} {name}: median {statistics.median(values):.2f} ns per op (min {min(values):.2f}, max {max(values):.2f})")
    print(f"{workload} new/old {statistics.median(samples['new']) / statistics.median(samples['old']):.3f}")


main()
