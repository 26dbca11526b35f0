// PsCommand.cs — `dotnet-kmem ps`: the .NET processes that have Kmem loaded (all .NET processes with --all).
using System.CommandLine;
using Kmem.Tool.Attach;
using Spectre.Console;

namespace Kmem.Tool;

internal static class PsCommand
{
    public static Command Create()
    {
        var all = new Option<bool>("--all") { Description = "List every .NET process, with a column saying whether Kmem is loaded (? when the process's maps cannot tell: single-file, Native AOT, another user's)." };
        var command = new Command("ps", "List .NET processes with Kmem loaded (pid, name, command line).") { all };
        command.SetAction(r => ToolCommon.Guard(() => Run(r.GetValue(all))));
        return command;
    }

    private static int Run(bool all)
    {
        if (!OperatingSystem.IsLinux())
            throw new ToolException("ps is supported on Linux only");
        List<TargetInfo> targets = TargetProcess.All().Where(t => all || t.HasKmem != false).ToList();
        if (targets.Count == 0)
        {
            Console.WriteLine(all ? "no .NET processes found" : "no .NET process has Kmem loaded (try --all)");
            return 0;
        }
        var table = new Table().AddColumn("PID").AddColumn("Name");
        if (all)
            table.AddColumn("Kmem");
        table.AddColumn("Command line");
        foreach (TargetInfo t in targets)
        {
            var cells = new List<string> { t.Pid.ToString(), Markup.Escape(t.Name) };
            if (all)
                cells.Add(t.HasKmem switch { true => "yes", false => "no", null => "?" });
            cells.Add(Markup.Escape(t.CommandLine));
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.Write(table);
        return 0;
    }
}
