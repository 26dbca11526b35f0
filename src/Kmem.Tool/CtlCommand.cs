// CtlCommand.cs — `dotnet-kmem ctl -p PID <command>`: any kmemleak command in the target ("scan", "clear",
// "scan=60", "dump=0x…", "stack=off", …) and `verify`; prints what the command printed.
using System.CommandLine;
using Kmem.Tool.Attach;

namespace Kmem.Tool;

internal static class CtlCommand
{
    public static Command Create()
    {
        var pid = ToolCommon.ProcessId();
        var text = new Argument<string>("command") { Description = "A kmemleak command (scan, clear, scan=SECONDS, dump=ADDR, …) or verify." };
        var timeout = ToolCommon.Timeout();
        var command = new Command("ctl", "Send a kmemleak command to a process, as writing to /sys/kernel/debug/kmemleak.") { pid, text, timeout };
        command.SetAction(r => ToolCommon.Guard(() => Run(r.GetValue(pid), r.GetValue(text)!, r.GetValue(timeout))));
        return command;
    }

    private static int Run(int pid, string command, int timeout)
    {
        if (string.IsNullOrWhiteSpace(command))
            throw new ToolException("no command given");
        string reply = ToolCommon.Expect(ToolCommon.Ask(pid, command.Trim(), timeout, $"running '{command.Trim()}'"), command.Trim());
        Console.Write(reply.Length == 0 || reply.EndsWith('\n') ? reply : reply + "\n");
        return 0;
    }
}
