// Program.cs — dotnet-kmem's command line: the commands and their options. Each command lives in its own file.
using System.CommandLine;
using Kmem.Tool;

var root = new RootCommand("dotnet-kmem: typed native memory and leak detection for .NET (Kmem)");
root.Subcommands.Add(DemoCommand.Create());
return root.Parse(args).Invoke();
