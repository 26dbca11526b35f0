// Program.cs — dotnet-kmem's command line: the commands and their options. Each command lives in its own file.
using System.CommandLine;
using Kmem.Tool;

if (Console.IsOutputRedirected)
{
    // Piped or captured: plain text, wide enough for the tables.
    Spectre.Console.AnsiConsole.Profile.Capabilities.Ansi = false;
    Spectre.Console.AnsiConsole.Profile.Width = 200;
}

var root = new RootCommand("dotnet-kmem: typed native memory and leak detection for .NET (Kmem)");
root.Subcommands.Add(PsCommand.Create());
root.Subcommands.Add(StatCommand.Create());
root.Subcommands.Add(LeaksCommand.Create());
root.Subcommands.Add(CtlCommand.Create());
root.Subcommands.Add(MonitorCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(StressCommand.Create());
return root.Parse(args).Invoke();
