// StatCommand.cs — `dotnet-kmem stat -p PID`: the target's malloc types as a table, then its vmstat -m text; --json.
using System.CommandLine;
using Kmem.Tool.Attach;
using Spectre.Console;

namespace Kmem.Tool;

internal static class StatCommand
{
    public static Command Create()
    {
        var pid = ToolCommon.ProcessId();
        var json = new Option<bool>("--json") { Description = "Print JSON: the types' numbers and the vmstat -m text." };
        var timeout = ToolCommon.Timeout();
        var command = new Command("stat", "Show a process's native memory by malloc type (vmstat -m).") { pid, json, timeout };
        command.SetAction(r => ToolCommon.Guard(() => Run(r.GetValue(pid), r.GetValue(json), r.GetValue(timeout))));
        return command;
    }

    private static int Run(int pid, bool json, int timeout)
    {
        Reply reply = ToolCommon.Ask(pid, "stat", timeout, "reading statistics");
        string vmstat = ToolCommon.Expect(reply, "stat");
        if (json)
        {
            ToolCommon.PrintJson(new { pid, types = reply.Types, vmstat });
            return 0;
        }
        AnsiConsole.Write(TypeTable(reply.Types.OrderByDescending(t => t.MemUse), null, showDelta: false));
        Console.WriteLine();
        Console.Write(vmstat);
        return 0;
    }

    /// <summary>The types as a table; with <paramref name="showDelta"/>, a column of changes since <paramref name="previous"/>
    /// (rows matched by type index: names need not be unique; blank before there is a previous table).</summary>
    public static Table TypeTable(IEnumerable<TypeRow> rows, IReadOnlyDictionary<int, TypeRow>? previous, bool showDelta)
    {
        var table = new Table().AddColumn("Type").AddColumn(new TableColumn("In use").RightAligned())
            .AddColumn(new TableColumn("Memory").RightAligned());
        if (showDelta)
            table.AddColumn(new TableColumn("Δ memory").RightAligned());
        table.AddColumn(new TableColumn("High use").RightAligned()).AddColumn(new TableColumn("Limit").RightAligned())
            .AddColumn(new TableColumn("Requests").RightAligned()).AddColumn(new TableColumn("Limit blocks").RightAligned());
        foreach (TypeRow t in rows)
        {
            var cells = new List<string> { Markup.Escape(t.Type), t.InUse.ToString("N0"), ToolCommon.Bytes(t.MemUse) };
            if (showDelta)
            {
                long delta = previous is null ? 0 : previous.TryGetValue(t.Index, out TypeRow? p) ? t.MemUse - p.MemUse : t.MemUse;
                cells.Add(delta == 0 ? "" : (delta > 0 ? "+" : "-") + ToolCommon.Bytes(Math.Abs(delta)));
            }
            cells.Add(ToolCommon.Bytes(t.HighUse));
            cells.Add(ToolCommon.Bytes(t.Limit));
            cells.Add(t.Requests.ToString("N0"));
            cells.Add(t.LimitBlocks.ToString("N0"));
            table.AddRow(cells.ToArray());
        }
        return table;
    }
}
