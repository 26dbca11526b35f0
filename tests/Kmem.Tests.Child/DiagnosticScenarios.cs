// DiagnosticScenarios.cs — DIAGNOSTIC cases that need a fresh process: guard pages that must fault (the process dies),
// settings checked when Kmem starts (MINBUCKET), and a leak scan of a small process with the quarantine and the
// allocation log full of the addresses of leaked blocks.
using Kmem;

internal static unsafe class DiagnosticScenarios
{
    /// <summary>Runs the scenario "diag-…". Fault scenarios print a line before the faulting access and "survived" after.</summary>
    public static int Run(string name)
    {
        var type = new MallocType("guarded");
        try
        {
            switch (name)
            {
                case "diag-guard-overflow":
                case "diag-guard-underflow":
                case "diag-guard-use-after-free":
                {
                    KmemOptions.SetGuardPages(type, 1, 4096);
                    byte* p = (byte*)Heap.Malloc(64, type);
                    p[0] = 1;
                    p[63] = 1;
                    Console.WriteLine($"in bounds ok, page end {((nuint)p + 64) % (nuint)Environment.SystemPageSize == 0}");
                    if (name == "diag-guard-use-after-free")
                    {
                        Heap.Free(p, type);
                        Console.WriteLine("freed");
                    }
                    Console.Out.Flush();
                    if (name == "diag-guard-overflow")
                        p[64] = 1;
                    else if (name == "diag-guard-underflow")
                        p[-(Environment.SystemPageSize + 1)] = 1; // below the block's page: never accessible
                    else
                        Console.WriteLine(p[0]);
                    Console.WriteLine("survived");
                    return 0;
                }
                case "diag-minbucket":
                {
                    // KMEM_MINBUCKET is read when Kmem starts: too small a bucket panics, every time, without mapping anything.
                    for (int i = 0; i < 2; i++)
                    {
                        try
                        {
                            Heap.Malloc(16, type);
                            Console.WriteLine("allocated");
                        }
                        catch (KmemPanicException e)
                        {
                            Console.WriteLine("caught: " + e.Message);
                        }
                    }
                    return 0;
                }
                case "diag-minbucket-64":
                {
                    Console.WriteLine($"before start roundup(1)={Heap.Roundup(1)}"); // the same answer before the first malloc
                    void* p = Heap.Malloc(1, type);
                    Console.WriteLine($"roundup(1)={Heap.Roundup(1)} roundup(100)={Heap.Roundup(100)}");
                    Heap.Free(p, type);
                    return 0;
                }
                case "diag-env":
                {
                    // Every DIAGNOSTIC setting from the environment, read when Kmem starts.
                    Console.WriteLine($"diagnostic={KmemOptions.Diagnostic} poison={KmemOptions.DiagnosticPoison} redzones={KmemOptions.DiagnosticRedzones}"
                        + $" quarantine={KmemOptions.QuarantineBlocks} log={KmemOptions.MallocLogEntries}");
                    var messages = new List<string>();
                    KmemDiagnostics.Message += (_, m) => messages.Add(m);
                    byte* g = (byte*)Heap.Malloc(150, type);
                    Console.WriteLine($"guarded at page end={((nuint)g + 160) % (nuint)Environment.SystemPageSize == 0}");
                    Heap.Free(g, type);
                    var other = new MallocType("other");
                    byte* q = (byte*)Heap.Malloc(64, other);
                    Console.WriteLine($"plain 16-byte offset={((nuint)q & 63) == 0}");
                    Heap.Free(q, other);
                    q[60] = 0; // past the first 32 bytes: only full poisoning sees it
                    for (int i = 0; i < 3; i++)
                        Heap.Free(Heap.Malloc(16, other), other);
                    Console.WriteLine($"messages={string.Join(" | ", messages.Select(m => m.Split('\n')[0]))}");
                    return 0;
                }
                case "diag-leaks":
                    return LeaksStayVisible(type);
                case "diag-tool-target":
                    return ToolTarget(onLeakMessage: null);
                case "diag-tool-throwing":
                    return ToolTarget(onLeakMessage: () => throw new IOException("a handler that fails"));
                case "diag-tool-dying":
                    return ToolTarget(onLeakMessage: () => Environment.Exit(3)); // ends in the middle of a command
                default:
                    return 2;
            }
        }
        catch (CheckFailed e)
        {
            Console.WriteLine("FAIL: " + e.Message);
            return 1;
        }
    }

    // A process for dotnet-kmem to attach to: known allocations under "served", three leaked blocks, its own view of
    // the numbers on stdout, then it waits until stdin closes.
    private static int ToolTarget(Action? onLeakMessage)
    {
        Kmemleak.Write("minage=0");
        var served = new MallocType("served", "tool test");
        var kept = new List<nint>();
        for (int i = 0; i < 10; i++)
            kept.Add((nint)Heap.Malloc(100, served));
        LeakThree(served);
        // Two types may share a name (as in NetBSD); the tool tells them apart.
        MallocType dupA = new("dup"), dupB = new("dup");
        kept.Add((nint)Heap.Malloc(16, dupA));
        kept.Add((nint)Heap.Malloc(16, dupB));
        kept.Add((nint)Heap.Malloc(16, dupB));
        // A memory-pool buffer whose owner is dropped without Dispose: reported once the GC collects it.
        using var pool = new Kmem.Pools.KmemMemoryPool(new MallocType("pooled"));
        DropPoolOwner(pool);
        for (int i = 0; i < 5; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        if (onLeakMessage is not null)
            KmemDiagnostics.Message += (_, text) =>
            {
                if (text.Contains("suspected memory leaks", StringComparison.Ordinal))
                    onLeakMessage();
            };
        MallocTypeStats s = served.GetStats();
        Console.WriteLine($"self: inuse={s.InUse} memuse={s.MemUse} requests={s.Requests}");
        Console.WriteLine("ready");
        Console.Out.Flush();
        Console.In.ReadToEnd();
        GC.KeepAlive(kept);
        return 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void DropPoolOwner(Kmem.Pools.KmemMemoryPool pool) => pool.Rent(256).Memory.Span.Fill(1);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void LeakThree(MallocType type)
    {
        for (int i = 0; i < 3; i++)
            Heap.Malloc(48, type, MallocFlags.Zero);
    }

    // With every DIAGNOSTIC structure holding the addresses of the leaked blocks (the allocation log records each
    // malloc and free, the quarantine holds freed neighbours), every leaked block is still reported: none of them
    // is a root or holds a raw address.
    private static int LeaksStayVisible(MallocType type)
    {
        Kmemleak.Write("minage=0");
        Kmemleak.Write("unref_scans=1");
        KmemOptions.Diagnostic = true;
        KmemOptions.SetGuardPages(type, 200, 300);
        var keys = new List<nuint>();
        for (int i = 0; i < 30; i++)
        {
            keys.Add(~(nuint)Heap.Malloc((nuint)(16 + 24 * i), type));     // redzoned slab blocks
            Heap.Free(Heap.Malloc((nuint)(16 + 24 * i), type), type);      // a quarantined neighbour
        }
        keys.Add(~(nuint)Heap.Malloc(250, type));                          // a guarded block
        keys.Add(~(nuint)Heap.Malloc(100_000, type));                      // a large block
        Kmemleak.Scan();
        LeakScanResult r = Kmemleak.Scan();
        foreach (nuint k in keys)
        {
            nuint p = ~k;
            if (!r.Leaks.Any(l => p >= l.Address && p - l.Address < l.Size))
                Check.Fail($"0x{p:x} not reported; referenced from " + string.Join("; ", Kmemleak.FindRootReferences((void*)p)));
        }
        Check.True(KmemDiagnostics.Recent.All(m => !m.Contains("REDZONE", StringComparison.Ordinal) && !m.Contains("Data modified", StringComparison.Ordinal)),
            "a clean run printed a check message");
        foreach (nuint k in keys)
            Heap.Free((void*)~k, type);
        Console.WriteLine("ok");
        return 0;
    }
}
