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
        var end = duration > 0 ? DateTime.UtcNow.AddSeconds(duration) : DateTime.MaxValue;
        Dictionary<string, TypeRow>? previous = null;
        var wait = TimeSpan.FromSeconds(timeout);

        Table Refresh()
        {
            Reply reply = KmemClient.Run(pid, "stat", wait);
            ToolCommon.Expect(reply, "stat");
            Table table = StatCommand.TypeTable(reply.Types.OrderByDescending(t => t.MemUse), previous ?? new Dictionary<string, TypeRow>());
            table.Caption($"process {pid}, {DateTime.Now:HH:mm:ss}; Ctrl+C to stop");
            previous = reply.Types.ToDictionary(t => t.Type);
            return table;
        }

        bool More() => !cancel.IsCancellationRequested && DateTime.UtcNow < end;
        if (Console.IsOutputRedirected)
        {
            do
            {
                AnsiConsole.Write(Refresh());
                Console.WriteLine();
            }
            while (More() && !cancel.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(interval)));
            return 0;
        }
        AnsiConsole.Live(Refresh()).Start(ctx =>
        {
            while (More() && !cancel.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(interval)))
            {
                ctx.UpdateTarget(Refresh());
                ctx.Refresh();
            }
        });
        return 0;
    }
}
