#!/usr/bin/env python3
# bench/scripts/threads2_mixing.py — runs threads2-scaling/2 repeatedly in the benchmark's KMEMLEAK=off child and,
# after each repetition, asks it how many 32-slot slab groups hold free blocks of both threads (the child's `mixing`
# command, Quick/BlockMixing.cs): whether slow repetitions come with blocks moving between the threads.
# usage: bench/scripts/threads2_mixing.py [REPETITIONS [CHECKOUT]]   (build the checkout with -c Release first)
import os
import subprocess
import sys


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    checkout = sys.argv[2] if len(sys.argv) > 2 else "."
    dll = os.path.join(checkout, "bench/Kmem.Benchmarks/bin/Release/net10.0/Kmem.Benchmarks.dll")
    if not os.path.exists(dll):
        sys.exit(f"{dll} is missing: dotnet build -c Release bench/Kmem.Benchmarks")
    env = dict(os.environ, KMEMLEAK="off")
    env.pop("KMEM_BENCH_CHILD_TRACKING", None)
    child = subprocess.Popen(["dotnet", dll, "quick-child-tracking-off", "2000000"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    if child.stdout.readline().strip() != "ready":
        sys.exit("the benchmark child did not start")

    def ask(command):
        child.stdin.write(command + "\n")
        child.stdin.flush()
        answer = child.stdout.readline().strip()
        if answer.startswith("error"):
            sys.exit(answer)
        return answer

    ask("warm threads2-scaling/2 1000000")
    print("after warm-up:", ask("mixing"))
    for _ in range(reps):
        ns = float(ask("run threads2-scaling/2 1000000"))
        print(f"{ns:6.1f} ns/op per thread   {ask('mixing')}")
    child.stdin.close()
    child.wait()


if __name__ == "__main__":
    main()
