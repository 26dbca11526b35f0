// Diagnostics/CallSites.cs — interns allocation sites ([CallerMemberName], [CallerFilePath], [CallerLineNumber]) to
// 32-bit ids that side tables can hold. Caller-info strings are literals, so a hit in the cache is a reference compare.
using System.Runtime.CompilerServices;

namespace Kmem.Diagnostics;

internal static class CallSites
{
    private sealed record Site(string Member, string File, int Line, uint Id);

    private const int CacheSize = 4096;
    private static readonly Site?[] s_cache = new Site?[CacheSize];
    private static readonly object s_lock = new();
    private static readonly Dictionary<(string, string, int), Site> s_byKey = new();
    private static readonly List<Site> s_byId = new() { new Site("", "", 0, 0) };

    /// <summary>The id of a site (0 = unknown).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Intern(string member, string file, int line)
    {
        if (member is null || file is null)
            return InternSlow(member, file, line);
        Site? s = s_cache[(line ^ (file.Length << 5) ^ (member.Length << 9)) & (CacheSize - 1)];
        if (s is not null && s.Line == line && ReferenceEquals(s.File, file) && ReferenceEquals(s.Member, member))
            return s.Id;
        return InternSlow(member, file, line);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static uint InternSlow(string? member, string? file, int line)
    {
        member ??= "";
        file ??= "";
        lock (s_lock)
        {
            if (!s_byKey.TryGetValue((member, file, line), out Site? s))
            {
                s = new Site(member, file, line, (uint)s_byId.Count);
                s_byId.Add(s);
                s_byKey.Add((member, file, line), s);
            }
            // Cache the caller's own string objects so the next call from this site is a reference compare.
            s_cache[(line ^ (file.Length << 5) ^ (member.Length << 9)) & (CacheSize - 1)] = s with { Member = member, File = file };
            return s.Id;
        }
    }

    /// <summary>"Member at File:Line", or "unknown" for id 0.</summary>
    public static string Describe(uint id)
    {
        lock (s_lock)
        {
            if (id == 0 || id >= s_byId.Count)
                return "unknown";
            Site s = s_byId[(int)id];
            return s.File.Length == 0 ? s.Member : $"{s.Member} at {s.File}:{s.Line}";
        }
    }
}
