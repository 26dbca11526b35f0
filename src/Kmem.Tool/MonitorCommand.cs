// MonitorCommand.cs — `dotnet-kmem monitor -p PID`: a live table of the target's malloc types, sorted by memory use,
// with the change since the previous refresh; every second until Ctrl+C (or --duration). Without a terminal it prints
// one table per refresh.
using System.CommandLine;
using Kmem.Tool.Attach;
using Spectre.Console;

namespace Kmem.Tool;

internal static class MonitorCommand
{
    public static Command Create()
    {
        var pid = ToolCommon.ProcessId();
        var interval = new Option<double>("--refresh-interval") { Description = "Seconds between refreshes.", DefaultValueFactory = _ => 1.0 };
        var duration = new Option<double>("--duration") { Description = "Stop after this many seconds (0: until Ctrl+C).", DefaultValueFactory = _ => 0 };
        var timeout = ToolCommon.Timeout();
        var command = new Command("monitor", "Watch a process's malloc types live (memory use, with changes).") { pid, interval, duration, timeout };
        command.SetAction(r => ToolCommon.Guard(() => Run(r.GetValue(pid), r.GetValue(interval), r.GetValue(duration), r.GetValue(timeout))));
        return command;
    }

    private static int Run(int pid, double interval, double duration, int timeout)
    {
        if (interval <= 0 || duration < 0)
            throw new ToolException("--refresh-interval must be positive and --duration not negative");
        TargetProcess.Require(pid);
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        var monitor = new Monitor(pid, TimeSpan.FromSeconds(timeout), cancel.Token);
        DateTime end = duration > 0 ? DateTime.UtcNow.AddSeconds(duration) : DateTime.MaxValue;
        var pause = TimeSpan.FromSeconds(interval);
        bool More() => !cancel.IsCancellationRequested && DateTime.UtcNow < end && !cancel.Token.WaitHandle.WaitOne(pause);
        try
        {
            if (Console.IsOutputRedirected)
            {
                do
                {
                    AnsiConsole.Write(monitor.Refresh());
                    Console.WriteLine();
                }
                while (More());
                return 0;
            }
            AnsiConsole.Live(monitor.Refresh()).Start(ctx =>
            {
                while (More())
                {
                    ctx.UpdateTarget(monitor.Refresh());
                    ctx.Refresh();
                }
            });
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C during a refresh
        }
        return 0;
    }

    /// <summary>One refresh after another: each a `stat` in the target, compared with the one before (by type index).</summary>
    private sealed class Monitor(int pid, TimeSpan timeout, CancellationToken cancel)
    {
        private Dictionary<int, TypeRow>? _previous;

        public Table Refresh()
        {
            Reply reply = KmemClient.Run(pid, "stat", timeout, cancel);
            ToolCommon.Expect(reply, "stat");
            Table table = StatCommand.TypeTable(reply.Types.OrderByDescending(t => t.MemUse), _previous, showDelta: true);
            table.Caption($"process {pid}, {DateTime.Now:HH:mm:ss}; Ctrl+C to stop");
            _previous = reply.Types.ToDictionary(t => t.Index);
            return table;
        }
    }
}
