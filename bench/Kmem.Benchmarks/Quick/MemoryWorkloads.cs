// Quick/MemoryWorkloads.cs — the workloads measured in fresh child processes from outside the library: "rss-1m" and
// "metadata-per-object" (RSS growth from /proc/self/status for 2^20 live 64-byte blocks; hidden mode quick-child-rss)
// and "stats-1000-types" (Heap.TypeStats() and Heap.FormatVmstat() with 1000 types; hidden mode quick-child-stats).
// Owns both the parent's side (children, rows) and the children's.
using System.Diagnostics;
using System.Globalization;
using Kmem.Benchmarks.Peers;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

internal static unsafe class MemoryWorkloads
{
    public const string RssWorkload = "rss-1m";
    public const string MetadataWorkload = "metadata-per-object";
    public const string StatsWorkload = "stats-1000-types";
    public const string RssChildMode = "quick-child-rss";
    public const string StatsChildMode = "quick-child-stats";

    /// <summary>The side tables' design figure per block: owner 2 + context 4 + birth stamp 4 + checksum 4 + state 1.</summary>
    public const int DesignSideTableBytes = 15;

    private const int Blocks = 1 << 20;
    private const nuint BlockSize = 64;
    private const long PayloadBytes = Blocks * (long)BlockSize; // 64 MiB
    private const int Types = 1000;
    private const int BlocksPerType = 4;
    private const int StatsCalls = 21;
    private static readonly TimeSpan s_childTimeout = TimeSpan.FromMinutes(2);

    /// <summary>(subject, allocator given to the child, whether the child runs with KMEMLEAK=off).</summary>
    private static readonly (string Subject, string Allocator, bool TrackingOff)[] s_rssSubjects =
    [
        ("kmem", AllocWorkloads.Kmem, true),
        ("kmem-tracking", AllocWorkloads.Kmem, false),
        ("mimalloc", AllocWorkloads.Mimalloc, false),
        ("nativememory", AllocWorkloads.NativeMemoryName, false),
        ("jemalloc", AllocWorkloads.Jemalloc, false),
        ("bump", Bump, false),
    ];

    /// <summary>The RSS children's ideal allocator (<see cref="BumpAllocator"/>): the payload and the process's own growth.</summary>
    private const string Bump = "bump";

    // ---- parent side --------------------------------------------------------------------------------------------------

    /// <summary>rss-1m and metadata-per-object: <paramref name="runs"/> fresh children per subject (median).</summary>
    public static void RunRss(Results results, int runs)
    {
        Console.WriteLine();
        Console.WriteLine($"{RssWorkload}, {MetadataWorkload}: RSS growth (VmRSS of /proc/self/status) for {Blocks:N0} live"
            + $" 64-byte blocks, each written; a fresh child per subject and run ({runs} run(s))");
        results.Describe(RssWorkload, $"MiB of RSS growth (VmRSS) for {Blocks:N0} live 64-byte blocks (64 MiB of payload),"
            + " each written, in a fresh child; median of the children");
        results.Describe(MetadataWorkload, $"bytes per object: (RSS growth − the bump allocator's RSS growth) / {Blocks:N0},"
            + " medians of the same children: everything Kmem adds to an ideal allocator that has no metadata and carves one"
            + " region in order (slabs' slack, side tables, maps, thread cache; the process's own growth during the loop, JIT"
            + $" and runtime, is in both); the side tables' design figure is {DesignSideTableBytes} B = 2 owner + 4 context"
            + " + 4 stamp + 4 crc + 1 state");
        var kmemGrowth = new List<(string Subject, List<double> Growth)>();
        double? bumpGrowth = null;
        foreach ((string subject, string allocator, bool trackingOff) in s_rssSubjects)
        {
            var growth = new List<double>();
            for (int run = 0; run < runs; run++)
            {
                var environment = new Dictionary<string, string>();
                if (trackingOff)
                {
                    environment["KMEMLEAK"] = "off";
                }

                ToolRun child = ChildProcess.RunSelf([RssChildMode, allocator], environment, s_childTimeout);
                string? line = child.Output.Split('\n').FirstOrDefault(l => l.StartsWith("rss ", StringComparison.Ordinal));
                string? skip = child.Output.Split('\n').FirstOrDefault(l => l.StartsWith("skip ", StringComparison.Ordinal));
                if (skip is not null || !child.Ok || line is null)
                {
                    string why = skip?[5..] ?? $"the child failed ({child.Error ?? $"exit code {child.ExitCode}"})";
                    Console.WriteLine($"note:    {subject} skipped: {why}");
                    results.Notes.Add($"{RssWorkload} {subject} skipped: {why}");
                    break;
                }

                Dictionary<string, double> fields = Fields(line);
                growth.Add((fields["after_kb"] - fields["before_kb"]) * 1024);
            }

            if (growth.Count == 0)
            {
                continue;
            }

            if (allocator == Bump)
            {
                bumpGrowth = Timing.Median(growth);
                Console.WriteLine($"{subject + ":",-15} {bumpGrowth / (1 << 20),7:F1} MiB (ideal: payload + the process's own"
                    + $" growth, {(bumpGrowth - PayloadBytes) / Blocks:F1} B per object)");
                continue; // a yardstick, not a subject of rss-1m
            }

            results.Add(RssWorkload, subject, [.. growth.Select(b => b / (1 << 20))], "MiB");
            Console.WriteLine($"{subject + ":",-15} {Timing.Median(growth) / (1 << 20),7:F1} MiB");
            if (allocator == AllocWorkloads.Kmem)
            {
                kmemGrowth.Add((subject, growth));
            }
        }

        if (bumpGrowth is double ideal)
        {
            foreach ((string subject, List<double> growth) in kmemGrowth)
            {
                results.Add(MetadataWorkload, subject, [.. growth.Select(b => (b - ideal) / Blocks)], "B");
                Console.WriteLine($"{MetadataWorkload} {subject}: {(Timing.Median(growth) - ideal) / Blocks:F1} B per object"
                    + " beyond the bump allocator");
            }
        }
        else
        {
            Console.WriteLine($"note:    {MetadataWorkload} skipped: the bump allocator's child failed");
            results.Notes.Add($"{MetadataWorkload} skipped: the bump allocator's child failed");
        }

        Console.WriteLine($"note:    the side tables' design figure is {DesignSideTableBytes} B per block (2 owner + 4 context"
            + " + 4 stamp + 4 crc + 1 state)");
    }

    /// <summary>stats-1000-types in a fresh KMEMLEAK=off child.</summary>
    public static void RunStats(Results results)
    {
        Console.WriteLine();
        Console.WriteLine($"{StatsWorkload}: Heap.TypeStats() and Heap.FormatVmstat() with {Types:N0} types of"
            + $" {BlocksPerType} live blocks each (a fresh KMEMLEAK=off child; median of {StatsCalls} calls)");
        results.Describe(StatsWorkload, $"ms per call with {Types:N0} extra types holding {BlocksPerType} live blocks each, fresh"
            + $" KMEMLEAK=off child, median of {StatsCalls} calls after 3 warm-up calls; kmem: `Heap.TypeStats()`,"
            + " kmem-formatvmstat: `Heap.FormatVmstat()`");
        ToolRun child = ChildProcess.RunSelf([StatsChildMode], new Dictionary<string, string> { ["KMEMLEAK"] = "off" },
            s_childTimeout);
        string? line = child.Output.Split('\n').FirstOrDefault(l => l.StartsWith("stats ", StringComparison.Ordinal));
        if (!child.Ok || line is null)
        {
            string why = $"the child failed ({child.Error ?? $"exit code {child.ExitCode}"})";
            Console.WriteLine($"note:    skipped: {why}");
            results.Notes.Add($"{StatsWorkload} skipped: {why}");
            return;
        }

        Dictionary<string, double> f = Fields(line);
        Console.WriteLine($"kmem:    TypeStats {f["typestats_ms"]:F3} ms ({f["typestats_min"]:F3}-{f["typestats_max"]:F3};"
            + $" {f["types"]:F0} types returned), FormatVmstat {f["vmstat_ms"]:F3} ms ({f["vmstat_min"]:F3}-{f["vmstat_max"]:F3})");
        results.AddSummary(StatsWorkload, "kmem", f["typestats_ms"], f["typestats_min"], f["typestats_max"], StatsCalls, "ms");
        results.AddSummary(StatsWorkload, "kmem-formatvmstat", f["vmstat_ms"], f["vmstat_min"], f["vmstat_max"], StatsCalls,
            "ms");
    }

    private static Dictionary<string, double> Fields(string line) =>
        line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => f.Split('='))
            .ToDictionary(f => f[0], f => double.Parse(f[1], CultureInfo.InvariantCulture));

    // ---- the children -------------------------------------------------------------------------------------------------

    /// <summary>
    /// <c>quick-child-rss ALLOCATOR</c>: one 64-byte allocate+free first (the allocator's own start-up is not counted),
    /// a pointer array touched in full, then VmRSS; 2^20 blocks of 64 B, each written in full; VmRSS again. Prints
    /// <c>rss before_kb=… after_kb=…</c>, or <c>skip WHY</c> when the allocator cannot be loaded.
    /// </summary>
    public static int RunRssChild(string allocator)
    {
        return allocator switch
        {
            AllocWorkloads.Kmem => Rss<KmemAllocator>(),
            AllocWorkloads.NativeMemoryName => Rss<NativeMemoryAllocator>(),
            Bump => Rss<BumpAllocator>(),
            AllocWorkloads.Mimalloc when NativePeers.HasMimalloc => Rss<MimallocAllocator>(),
            AllocWorkloads.Mimalloc => Skip($"mimalloc: {NativePeers.MimallocNote}"),
            AllocWorkloads.Jemalloc when NativePeers.HasJemalloc => Rss<JemallocAllocator>(),
            AllocWorkloads.Jemalloc => Skip($"jemalloc: {NativePeers.JemallocNote}"),
            _ => Skip($"unknown allocator '{allocator}'"),
        };

        static int Skip(string why)
        {
            Console.WriteLine($"skip {why}");
            return 0;
        }
    }

    private static int Rss<T>() where T : struct, IAllocator
    {
        T a = default;
        a.Free(a.Alloc(BlockSize), BlockSize);
        // The pointer array is written in full before the baseline: calloc'd (mmap'ed) pages would otherwise only
        // become resident during the loop and add 8 MiB to every subject's growth.
        nuint arrayBytes = Blocks * (nuint)sizeof(void*);
        ulong** pointers = (ulong**)System.Runtime.InteropServices.NativeMemory.Alloc(arrayBytes);
        System.Runtime.InteropServices.NativeMemory.Fill(pointers, arrayBytes, 0xff);
        long before = VmRssKb();
        for (int i = 0; i < Blocks; i++)
        {
            ulong* p = (ulong*)a.Alloc(BlockSize);
            for (int w = 0; w < 8; w++)
            {
                p[w] = (ulong)i + (ulong)w;
            }

            pointers[i] = p;
        }

        long after = VmRssKb();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"rss before_kb={before} after_kb={after}"));
        for (int i = 0; i < Blocks; i++)
        {
            a.Free(pointers[i], BlockSize);
        }

        System.Runtime.InteropServices.NativeMemory.Free(pointers);
        return 0;
    }

    /// <summary>VmRSS of /proc/self/status in kB; −1 when unreadable.</summary>
    private static long VmRssKb()
    {
        string? value = BenchJson.ReadField("/proc/self/status", "VmRSS", ':');
        string? number = value?.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb : -1;
    }

    /// <summary><c>quick-child-stats</c>: 1000 types with a few live blocks each, then the timed calls.</summary>
    public static int RunStatsChild()
    {
        var types = new MallocType[Types];
        var blocks = new nint[Types * BlocksPerType];
        for (int t = 0; t < Types; t++)
        {
            types[t] = new MallocType($"bt{t:D4}", "stats benchmark type");
            for (int b = 0; b < BlocksPerType; b++)
            {
                blocks[t * BlocksPerType + b] = (nint)Heap.Malloc((nuint)(32 << b), types[t]);
            }
        }

        int count = 0;
        var stats = new List<double>();
        var vmstat = new List<double>();
        int length = 0;
        for (int call = 0; call < StatsCalls + 3; call++)
        {
            long start = Stopwatch.GetTimestamp();
            count = Heap.TypeStats().Count;
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            length += Heap.FormatVmstat().Length;
            double vms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (call >= 3)
            {
                stats.Add(ms);
                vmstat.Add(vms);
            }
        }

        for (int i = 0; i < blocks.Length; i++)
        {
            Heap.Free((void*)blocks[i], types[i / BlocksPerType]);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"stats typestats_ms={Timing.Median(stats):F4} typestats_min={stats.Min():F4} typestats_max={stats.Max():F4}"
            + $" types={count} vmstat_ms={Timing.Median(vmstat):F4} vmstat_min={vmstat.Min():F4}"
            + $" vmstat_max={vmstat.Max():F4} chars={length}"));
        return 0;
    }
}
