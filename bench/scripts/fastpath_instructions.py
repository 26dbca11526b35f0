#!/usr/bin/env python3
# bench/scripts/fastpath_instructions.py — counts the instructions of the malloc+free fast paths, a figure this noisy VM
# cannot blur. Kmem's come from the JIT's own listing of tier-1 code (DOTNET_JitDisasm in the benchmark's KMEMLEAK=off
# child after it ran pair64-tight); mimalloc's are executed instructions counted by valgrind (callgrind) on a C loop of
# the same shapes as pair64-tight and pair64-batch1000.
# usage: bench/scripts/fastpath_instructions.py [CHECKOUT]   (default: this checkout; build it with -c Release first)
#
# What is counted (x86-64):
#   * a method (Heap.MallocValid, Heap.FreeValid): its instructions in layout order up to the first `ret`, which is
#     where the JIT puts the common path (the rare ones, calls to the slow paths, are laid out after it). On
#     pair64-tight every instruction up to that `ret` runs once per call (checked against the listing by hand);
#   * a loop (AllocWorkloads.TightLoop<T>): the instructions laid out from the loop's head to its back edge, i.e. what
#     one iteration of `p = malloc(64); *p = i; free(p)` runs, with whatever of the allocator was inlined into it, and
#     the benchmark's own 6 (the byte written and read back, the loop counter). Where the JIT lays a rare block inside
#     the loop, it is counted too, so this figure can move by a few percent between two compilations of the same code;
#   * thread-static reads in the loop: each is a call through a register to glibc's __tls_get_addr (11 instructions on
#     its fast path in glibc 2.36, counted with gdb in a running child; not included in the counts);
#   * mimalloc: (instructions of N2 pairs − instructions of N1 pairs) / (N2 − N1), whole program, under callgrind, so
#     per pair including its loop. In the tight shape every mi_free empties the page and takes mimalloc's page-retire
#     path; in the batch shape it does not. Skipped with a note when valgrind, gcc or mimalloc's header is missing.
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROGRAM = "bench/Kmem.Benchmarks/bin/Release/net10.0/Kmem.Benchmarks.dll"

MIMALLOC_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <mimalloc.h>
int main(int argc, char **argv) {
  long n = atol(argv[2]);
  static void *slots[1000];
  unsigned long sum = 0;
  if (argv[1][0] == 't') {
    for (long i = 0; i < n; i++) { unsigned char *p = mi_malloc(64); *p = (unsigned char)i; sum += *p; mi_free(p); }
  } else {
    for (long r = 0; r < n / 1000; r++) {
      for (int i = 0; i < 1000; i++) { unsigned char *p = mi_malloc(64); *p = (unsigned char)i; slots[i] = p; }
      for (int i = 0; i < 1000; i++) { sum += *(unsigned char *)slots[i]; mi_free(slots[i]); }
    }
  }
  printf("%lu\n", sum);
  return 0;
}
"""


def fail(message):
    print(f"fastpath_instructions: {message}", file=sys.stderr)
    sys.exit(1)


def listings(path):
    if not os.path.exists(path):
        fail(f"the JIT wrote no listing ({path}); is DOTNET_JitStdOutFile supported by this runtime?")
    text = open(path, encoding="utf-8", errors="replace").read()
    result = []
    for part in text.split("; Assembly listing for method ")[1:]:
        result.append((part.splitlines()[0], part.split("; Total bytes of code")[0]))
    return result


def parse(body):
    """Instructions as (label, mnemonic, operands) in layout order, and each label's index of its first instruction."""
    out, label, first = [], None, {}
    for line in body.splitlines():
        m = re.match(r"(G_M\d+_IG\d+):", line)
        if m:
            label = m.group(1)
            first.setdefault(label, len(out))
            continue
        s = line.strip()
        if label and line.startswith("       ") and s and not s.startswith(";"):
            parts = s.split(None, 1)
            out.append((label, parts[0], parts[1] if len(parts) > 1 else ""))
    return out, first


def to_first_ret(body):
    ins, _ = parse(body)
    for n, (_, op, _) in enumerate(ins, 1):
        if op == "ret":
            return n
    return None


def loop_body(body):
    """The longest stretch from a backward jump's target to the jump that holds no `ret`: the outer loop, closed by a
    conditional jump or by a `jmp` after the exit test (a jump back into the epilogue, or from a rare block laid out
    after the `ret`, spans a `ret` and is not the loop); and the thread-static calls in it."""
    ins, first = parse(body)
    best = None
    for i, (_, op, args) in enumerate(ins):
        if not op.startswith("j"):
            continue
        target = args.split()[-1] if args else ""  # "G_M000_IG03" or "SHORT G_M000_IG03"
        if target not in first or first[target] > i:
            continue
        segment = ins[first[target]:i + 1]
        if any(x[1] == "ret" for x in segment):
            continue
        if best is None or len(segment) > len(best):
            best = segment
    if best is None:
        return None, 0
    tls = 0
    for k in range(1, len(best)):
        _, op, args = best[k]
        _, prev_op, prev_args = best[k - 1]
        if op == "call" and re.fullmatch(r"r\w+", args) and prev_op == "mov" and prev_args.startswith(f"{args}, 0x"):
            tls += 1
    return len(best), tls


def pick(all_listings, name, prefer=("(Tier1)", "(Tier1-OSR)")):
    for tier in prefer:
        found = [body for header, body in all_listings if header.startswith(name) and tier in header]
        if found:
            return found[-1], tier.strip("()")
    return None, None


def kmem_counts(checkout):
    dll = os.path.join(checkout, PROGRAM)
    if not os.path.exists(dll):
        fail(f"{dll} is missing: run `dotnet build -c Release bench/Kmem.Benchmarks` in {checkout}")
    if shutil.which("dotnet") is None:
        fail("dotnet is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        listing = os.path.join(tmp, "jit.txt")
        env = dict(os.environ, KMEMLEAK="off", DOTNET_JitDisasm="TightLoop* MallocValid FreeValid",
                   DOTNET_JitStdOutFile=listing)
        env.pop("KMEM_BENCH_CHILD_TRACKING", None)
        commands = []
        for allocator in ("kmem", "kmem-batch"):
            commands.append(f"warm pair64-tight 2000000 {allocator}")
            commands += [f"run pair64-tight 2000000 {allocator}"] * 8
        child = subprocess.run(["dotnet", dll, "quick-child-tracking-off", "2000000"], input="\n".join(commands) + "\n",
                               capture_output=True, text=True, env=env, timeout=600)
        if child.returncode != 0 or "error" in child.stdout:
            fail(f"the benchmark child failed:\n{child.stdout}\n{child.stderr}")
        all_listings = listings(listing)
    rows = []
    for name in ("Kmem.Heap:MallocValid", "Kmem.Heap:FreeValid"):
        body, tier = pick(all_listings, name)
        rows.append((name.split(":")[1], tier, to_first_ret(body) if body else None, "to the first ret"))
    for allocator in ("KmemAllocator", "KmemBatchAllocator"):
        name = f"Kmem.Benchmarks.Quick.AllocWorkloads:TightLoop[Kmem.Benchmarks.Quick.{allocator}]"
        body, tier = pick(all_listings, name)
        count, tls = loop_body(body) if body else (None, 0)
        rows.append((f"TightLoop<{allocator}>", tier, count, f"one iteration; {tls} thread-static read(s)"))
    return rows


def mimalloc_counts():
    missing = [tool for tool in ("valgrind", "gcc") if shutil.which(tool) is None]
    if missing:
        return [("mimalloc", None, None, f"skipped: {', '.join(missing)} not installed (apt-get install -y valgrind gcc)")]
    with tempfile.TemporaryDirectory() as tmp:
        source, program = os.path.join(tmp, "mi_pairs.c"), os.path.join(tmp, "mi_pairs")
        open(source, "w").write(MIMALLOC_LOOP)
        build = subprocess.run(["gcc", "-O2", "-o", program, source, "-lmimalloc"], capture_output=True, text=True)
        if build.returncode != 0:
            return [("mimalloc", None, None, "skipped: the C loop does not build against mimalloc "
                     "(apt-get install -y libmimalloc-dev)")]
        rows = []
        for shape, label in (("t", "pair64-tight shape"), ("b", "pair64-batch1000 shape")):
            totals = []
            for n in (100_000, 200_000):
                out = os.path.join(tmp, f"cg.{shape}.{n}")
                run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", program, shape, str(n)],
                                     capture_output=True, text=True)
                m = re.search(r"^summary:\s+(\d+)", open(out).read() if os.path.exists(out) else "", re.M)
                if run.returncode != 0 or not m:
                    fail(f"callgrind failed on the mimalloc loop:\n{run.stderr[-2000:]}")
                totals.append(int(m.group(1)))
            rows.append((f"mimalloc, {label}", "callgrind", round((totals[1] - totals[0]) / 100_000, 1),
                         "executed per pair, its loop included"))
        return rows


def main():
    checkout = sys.argv[1] if len(sys.argv) > 1 else "."
    rows = kmem_counts(checkout) + mimalloc_counts()
    print(f"{'code':<40} {'source':<10} {'instructions':>12}  counted")
    for name, source, count, what in rows:
        print(f"{name:<40} {source or '-':<10} {count if count is not None else '-':>12}  {what}")
    if any(count is None and not what.startswith("skipped") for _, _, count, what in rows):
        fail("some code was not found in the JIT's listing (see '-' above)")


if __name__ == "__main__":
    main()
