// ScanUnderFireScenario.cs — kmemleak scans of the whole process under fire: threads map, unmap and protect memory
// (PROT_NONE and back) and others keep starting and ending short-lived threads that allocate Kmem blocks, keeping some
// in a registered root table; every scan must complete with the process roots read, and no block the root table held
// when a scan started may be reported. Also the "fire-find-roots" row of the bad-input matrix (a small process to read).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem;

internal static unsafe class ScanUnderFireScenario
{
    private const int Scans = 30;
    private const int Slots = 1 << 15;

    public static int Run(string name) => Check.Outcome(name switch
    {
        "fire-scan" => ScanUnderFire,
        "fire-find-roots" => FindRootReferencesOfNothing,
        _ => null,
    });

    private static void FindRootReferencesOfNothing()
    {
        void* foreign = NativeMemory.Alloc(64);
        Check.True(Kmemleak.FindRootReferences(null) is not null);
        Check.True(Kmemleak.FindRootReferences(foreign) is not null);
        Check.True(Kmemleak.FindRootReferences((void*)nuint.MaxValue) is not null);
        NativeMemory.Free(foreign);
        Console.WriteLine("find-roots ok");
    }

    private sealed class Fire
    {
        public readonly MallocType Type = new("fire", "blocks of short-lived threads");
        public nint* Root;
        public int Used;          // slots handed out (may pass Slots: then nothing more is kept)
        public volatile bool Stop;
        public long MapCycles, ThreadsRun, Blocks;
    }

    private static void ScanUnderFire()
    {
        Kmemleak.Write("minage=0");
        Kmemleak.Write("unref_scans=1");
        Check.True(Kmemleak.ProcessRootsEnabled, "process roots are on by default");
        var fire = new Fire { Root = (nint*)NativeMemory.AllocZeroed(Slots * (nuint)sizeof(nint)) };
        Kmemleak.Alloc(fire.Root, Slots * (nuint)sizeof(nint), 0);
        nuint leaked = AllocLeaked(fire.Type);

        var workers = new List<Thread>();
        for (int i = 0; i < 2; i++)
        {
            int seed = i;
            workers.Add(new Thread(() => Churn(fire, seed)) { Name = $"mapping churn {i}" });
            workers.Add(new Thread(() => SpawnThreads(fire, seed)) { Name = $"thread churn {i}" });
        }
        foreach (Thread w in workers)
            w.Start();
        long unreadable = 0, reported = 0, checkedKept = 0;
        try
        {
            for (int scan = 0; scan < Scans; scan++)
            {
                // Every block the root table holds now must survive this scan (kept blocks are never freed meanwhile).
                var kept = new HashSet<nuint>();
                int n = Math.Min(Volatile.Read(ref fire.Used), Slots);
                for (int k = 0; k < n; k++)
                {
                    nint v = Volatile.Read(ref fire.Root[k]);
                    if (v != 0)
                        kept.Add(~(nuint)v);
                }
                // Dead frames below this one (where the block leaked on purpose was allocated, and where the reports of
                // the last scan were made) are zeroed: Scan's first frame reuses that stack, and a stale copy of the
                // block's address in one of its slots would be read as a root (about 1 run in 10 without this).
                ProcessRootScenarios.ScrubStack();
                LeakScanResult r = Kmemleak.Scan();
                Check.True(r.Stats.ProcessRoots, $"scan {scan} read the process roots");
                // Addresses are compared complemented: a raw copy left in this frame's registers would be a root for
                // the next scan, and hide the block leaked on purpose.
                foreach (LeakReport l in r.Leaks)
                    if (kept.Contains(l.AddressComplement))
                        Check.True(false, $"scan {scan} reported 0x{~l.AddressComplement:x}, held by the root table since before it started");
                if (scan > 0)
                    Check.True(r.Leaks.Any(l => l.AddressComplement == leaked), $"scan {scan} missed the block leaked on purpose");
                unreadable += r.Stats.ProcessRootBytesUnreadable;
                reported = r.Leaks.Count;
                checkedKept += kept.Count;
            }
        }
        finally
        {
            fire.Stop = true;
            foreach (Thread w in workers)
                w.Join();
        }
        Check.True(fire.MapCycles > 0 && fire.ThreadsRun > 0, "the churn ran");
        Console.WriteLine($"fire: scans={Scans} kept={Math.Min(fire.Used, Slots)} kept-checks={checkedKept} threads={fire.ThreadsRun} " +
            $"blocks={fire.Blocks} mappings={fire.MapCycles} reported={reported} unreadable-bytes={unreadable}");
        Kmemleak.Free(fire.Root);
        for (int k = 0; k < Math.Min(fire.Used, Slots); k++)
            if (fire.Root[k] != 0)
                Heap.Free((void*)fire.Root[k], fire.Type);
        NativeMemory.Free(fire.Root);
        Heap.Free((void*)~leaked, fire.Type);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint AllocLeaked(MallocType t) => ~(nuint)Heap.Malloc(96, t);

    // Maps regions, writes them, makes parts inaccessible or read-only and back, unmaps them.
    private static void Churn(Fire fire, int seed)
    {
        var rnd = new Random(seed);
        while (!fire.Stop)
            if (Libc.MapProtectUnmap(rnd.Next(1, 48), yieldWhileProtected: true))
                Interlocked.Increment(ref fire.MapCycles);
    }

    // Starts short-lived threads a few at a time: each allocates some blocks, keeps one in the root table, frees the
    // rest, and every eighth also leaks one.
    private static void SpawnThreads(Fire fire, int seed)
    {
        var rnd = new Random(100 + seed);
        while (!fire.Stop)
        {
            var batch = new Thread[4];
            for (int i = 0; i < batch.Length; i++)
            {
                int sizeSeed = rnd.Next();
                batch[i] = new Thread(() => ShortLived(fire, sizeSeed), 256 * 1024);
                batch[i].Start();
            }
            foreach (Thread t in batch)
                t.Join();
        }
    }

    private static void ShortLived(Fire fire, int seed)
    {
        var rnd = new Random(seed);
        var blocks = new nuint[5];
        for (int i = 0; i < blocks.Length; i++)
        {
            nuint size = i == 4 && rnd.Next(4) == 0 ? 40_000 : (nuint)rnd.Next(16, 2048);
            byte* p = (byte*)Heap.Malloc(size, fire.Type);
            p[0] = (byte)i;
            blocks[i] = ~(nuint)p;
        }
        Interlocked.Add(ref fire.Blocks, blocks.Length);
        int slot = Interlocked.Increment(ref fire.Used) - 1;
        int first = 0;
        if (slot < Slots)
        {
            Volatile.Write(ref fire.Root[slot], (nint)~blocks[0]);
            first = 1;
        }
        bool leak = rnd.Next(8) == 0;
        for (int i = first; i < blocks.Length - (leak ? 1 : 0); i++)
            Heap.Free((void*)~blocks[i], fire.Type);
        Array.Clear(blocks);
        Interlocked.Increment(ref fire.ThreadsRun);
    }
}
