// LeaksCommand.cs — `dotnet-kmem leaks -p PID [--scan] [--json] [--fail-on-leak]`: the target's kmemleak report, the
// grouped summary first; exit code 23 with --fail-on-leak when leaks exist (as LeakSanitizer's).
using System.CommandLine;
using Kmem.Tool.Attach;
using Spectre.Console;

namespace Kmem.Tool;

internal static class LeaksCommand
{
    public const int LeakExitCode = 23;

    public static Command Create()
    {
        var pid = ToolCommon.ProcessId();
        var scan = new Option<bool>("--scan") { Description = "Scan now first, twice (a new object's first scan only records its checksum); else show what the last scan found." };
        var json = new Option<bool>("--json") { Description = "Print JSON: one object per suspected leak, and the report text." };
        var fail = new Option<bool>("--fail-on-leak") { Description = $"Exit with code {LeakExitCode} when leaks are reported." };
        var timeout = ToolCommon.Timeout();
        var command = new Command("leaks", "Show a process's suspected memory leaks (kmemleak).") { pid, scan, json, fail, timeout };
        command.SetAction(r => ToolCommon.Guard(() => Run(r.GetValue(pid), r.GetValue(scan), r.GetValue(json), r.GetValue(fail), r.GetValue(timeout))));
        return command;
    }

    private static int Run(int pid, bool scan, bool json, bool failOnLeak, int timeout)
    {
        if (scan)
        {
            ToolCommon.Expect(ToolCommon.Ask(pid, "scan", timeout, "scanning for leaks"), "scan");
            ToolCommon.Expect(ToolCommon.Ask(pid, "scan", timeout, "scanning for leaks again"), "scan");
        }
        Reply reply = ToolCommon.Ask(pid, "leaks", timeout, "reading the leak report");
        string text = ToolCommon.Expect(reply, "leaks");
        if (json)
            ToolCommon.PrintJson(new { pid, leaks = reply.Leaks, report = text });
        else
            Console.Write(text);
        return failOnLeak && reply.Leaks.Count > 0 ? LeakExitCode : 0;
    }
}
