// Program.cs — a child process for tests that must watch a process end: it performs one scenario named on its command line.
using Kmem;

if (args is ["plain-wait"])
{
    // A .NET process that never loads Kmem (for the tool's "has not loaded Kmem" error).
    Console.WriteLine("ready");
    Console.In.ReadLine();
    return 0;
}

return args.Length != 1 ? 2
    : args[0].StartsWith("roots-", StringComparison.Ordinal) ? ProcessRootScenarios.Run(args[0])
    : args[0].StartsWith("diag-", StringComparison.Ordinal) ? DiagnosticScenarios.Run(args[0])
    : args[0].StartsWith("fire-", StringComparison.Ordinal) ? ScanUnderFireScenario.Run(args[0])
    : args[0].StartsWith("rel-", StringComparison.Ordinal) ? ReliabilityScenarios.Run(args[0])
    : Scenarios.Run(args[0]);

internal static unsafe class Scenarios
{
    public static int Run(string name)
    {
        var type = new MallocType("child");
        switch (name)
        {
            case "double-free":
                void* p = Heap.Malloc(64, type);
                Heap.Free(p, type);
                try
                {
                    Heap.Free(p, type);
                }
                catch (KmemPanicException e)
                {
                    Console.WriteLine("caught: " + e.Message);
                    return 0;
                }
                return 1;
            case "map-size":
                // KMEM_MAP_SIZE bounds the whole heap: large blocks run out of kmem_map.
                int n = 0;
                while (Heap.Malloc(16 << 20, type, MallocFlags.NoWait) != null)
                    n++;
                Console.WriteLine($"blocks={n}");
                Heap.Malloc(16 << 20, type); // WaitOk: panics "out of space"
                return 1;
            case "guard-before":
            case "guard-after":
                // A write into a vmalloc guard page must kill the process at once.
                byte* area = (byte*)Heap.Vmalloc(8192, type);
                area[0] = 1;
                area[8191] = 1;
                Console.WriteLine("area ok");
                Console.Out.Flush();
                if (name == "guard-before")
                    area[-1] = 1;
                else
                    area[8192] = 1;
                Console.WriteLine("survived");
                return 0;
            case "kmemleak-off":
            {
                // After "off" everything but "clear" is refused; "off" cannot be undone.
                void* leaked = Heap.Malloc(64, type);
                Kmemleak.Write("off");
                Console.WriteLine($"enabled={Kmemleak.IsEnabled}");
                foreach (string c in new[] { "scan", "stack=on", "minage=0", "off" })
                {
                    try
                    {
                        Kmemleak.Write(c);
                        Console.WriteLine($"accepted {c}");
                    }
                    catch (InvalidOperationException)
                    {
                        Console.WriteLine($"refused {c}");
                    }
                }
                try
                {
                    Kmemleak.Scan();
                }
                catch (InvalidOperationException)
                {
                    Console.WriteLine("refused Scan()");
                }
                Kmemleak.Write("clear");
                Console.WriteLine("clear ok");
                Heap.Free(leaked, type);
                return 0;
            }
            case "kmemleak-debug":
            {
                // KMEMLEAK_DEBUG makes calls on unknown addresses say so.
                long local = 0;
                KmemDiagnostics.Message += (_, text) => Console.WriteLine(text);
                Kmemleak.NotLeak(&local);
                Kmemleak.Free(&local);
                Kmemleak.Ignore(&local);
                Kmemleak.NoScan(&local);
                return 0;
            }
            case "kmemleak-env-off":
                Heap.Free(Heap.Malloc(64, type), type);
                Console.WriteLine($"enabled={Kmemleak.IsEnabled}");
                return 0;
            default:
                return 2;
        }
    }
}
