#!/usr/bin/env python3
# bench/scripts/fastpath_instructions.py — counts the instructions of the malloc+free fast paths, a figure this noisy VM
# cannot blur: Kmem's from the JIT's own listing of tier-1 code (DOTNET_JitDisasm in the benchmark's KMEMLEAK=off child
# after it ran pair64-tight), mimalloc's from objdump of its shared library.
# usage: bench/scripts/fastpath_instructions.py [CHECKOUT]   (default: this checkout; build it with -c Release first)
#
# What is counted (x86-64):
#   * a method (Heap.MallocValid, Heap.FreeValid): its instructions in layout order up to the first `ret`, which is
#     where the JIT puts the common path (the rare ones, calls to the slow paths, are laid out after it);
#   * a loop (AllocWorkloads.TightLoop<T>): the instructions from the loop's head to its back edge, i.e. what one
#     iteration of `p = malloc(64); *p = i; free(p)` runs, with whatever of the allocator was inlined into it, and the
#     benchmark's own 6 (the byte written and read back, the loop counter);
#   * thread-static reads in the loop: each is a call to glibc's __tls_get_addr (its fast path is 11 instructions in
#     glibc 2.36, not included in the counts; see docs/benchmarks.md);
#   * mimalloc's mi_malloc and mi_free: from the symbol to the first `ret` (their fast paths).
import os
import re
import subprocess
import sys
import tempfile

PROGRAM = "bench/Kmem.Benchmarks/bin/Release/net10.0/Kmem.Benchmarks.dll"
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"


def listings(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    parts = text.split("; Assembly listing for method ")[1:]
    result = []
    for part in parts:
        header = part.splitlines()[0]
        body = part.split("; Total bytes of code")[0]
        result.append((header, body))
    return result


def instructions(body):
    """(label, mnemonic, operands) in layout order."""
    out, label = [], None
    for line in body.splitlines():
        m = re.match(r"(G_M\d+_IG\d+):", line)
        if m:
            label = m.group(1)
            continue
        s = line.strip()
        if label and line.startswith("       ") and s and not s.startswith(";"):
            parts = s.split(None, 1)
            out.append((label, parts[0], parts[1] if len(parts) > 1 else ""))
    return out


def to_first_ret(body):
    n = 0
    for _, op, _ in instructions(body):
        n += 1
        if op == "ret":
            return n
    return None


def loop_body(body):
    """Instructions from the head of the first loop to its back edge, and the thread-static calls among them."""
    ins = instructions(body)
    order = []
    for label, _, _ in ins:
        if not order or order[-1] != label:
            order.append(label)
    position = {label: i for i, label in enumerate(order)}
    for i, (label, op, args) in enumerate(ins):
        if op.startswith("j") and op != "jmp" and args.strip() in position and position[args.strip()] <= position[label]:
            head = args.strip()
            start = next(k for k, x in enumerate(ins) if x[0] == head)
            segment = ins[start:i + 1]
            tls = sum(1 for k, x in enumerate(segment) if x[1] == "call" and x[2] == "rax" and k > 0
                      and segment[k - 1][1] == "mov" and segment[k - 1][2].startswith("rax, 0x"))
            return len(segment), tls
    return None, 0


def pick(all_listings, name, prefer=("(Tier1)", "(Tier1-OSR)")):
    for tier in prefer:
        found = [body for header, body in all_listings if header.startswith(name) and tier in header]
        if found:
            return found[-1], tier.strip("()")
    return None, None


def kmem_counts(checkout):
    dll = os.path.join(checkout, PROGRAM)
    if not os.path.exists(dll):
        sys.exit(f"{dll} is missing: dotnet build -c Release bench/Kmem.Benchmarks in {checkout}")
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
            sys.exit(f"the benchmark child failed:\n{child.stdout}\n{child.stderr}")
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
    path = os.path.realpath(MIMALLOC)
    if not os.path.exists(path):
        return [("mimalloc", None, None, f"{MIMALLOC} missing (apt-get install -y libmimalloc-dev)")]
    symbols = subprocess.run(["nm", "-D", path], capture_output=True, text=True).stdout
    rows = []
    for symbol in ("mi_malloc", "mi_free"):
        m = re.search(r"^([0-9a-f]+) T " + symbol + "$", symbols, re.M)
        if not m:
            rows.append((symbol, None, None, "not exported"))
            continue
        start = int(m.group(1), 16)
        dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={start:#x}",
                               f"--stop-address={start + 0x200:#x}", path], capture_output=True, text=True).stdout
        n = 0
        for line in dump.splitlines():
            if re.match(r"\s+[0-9a-f]+:\t", line):
                n += 1
                if "\tret" in line:
                    break
        rows.append((symbol, "objdump", n, "to the first ret"))
    return rows


def main():
    checkout = sys.argv[1] if len(sys.argv) > 1 else "."
    print(f"{'code':<40} {'tier':<10} {'instructions':>12}  counted")
    for name, tier, count, what in kmem_counts(checkout) + mimalloc_counts():
        print(f"{name:<40} {tier or '-':<10} {count if count is not None else '-':>12}  {what}")


if __name__ == "__main__":
    main()
