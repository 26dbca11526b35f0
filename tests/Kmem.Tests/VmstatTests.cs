// VmstatTests.cs — FormatVmstat() prints NetBSD's vmstat -m sections with their exact headers and column formats.
using System.Text;
using Kmem.Diagnostics;
using Xunit;

namespace Kmem.Tests;

public unsafe class VmstatTests
{
    [Fact]
    public void Sections_and_headers_are_NetBSDs()
    {
        var type = Types.New();
        void* p = Heap.Malloc(64, type);
        string text = Heap.FormatVmstat();
        Heap.Free(p, type);
        string[] lines = text.Split('\n');
        Assert.Equal("Memory statistics by bucket size", lines[0]);
        Assert.Equal("    Size   In Use   Free   Requests  HighWater  Couldfree", lines[1]);
        Assert.Contains("\n\nMemory usage type by bucket size\n    Size  Type(s)\n", text);
        Assert.Contains("\n\nMemory statistics by type                           Type  Kern\n" +
                        "         Type  InUse MemUse HighUse  Limit Requests Limit Limit Size(s)\n", text);
        Assert.Contains("\n\nMemory totals:  In Use    Free    Requests\n", text);
        Assert.EndsWith("\n\n", text);
        // Bucket rows: "%8d %8ld %6ld %10ld %7ld %10ld".
        Assert.Matches(@"\n {6}64 [ \d]{8} [ \d]{6} [ \d]{10} [ \d]{7} {10}0\n", text);
    }

    [Fact]
    public void A_type_row_has_the_kernels_columns_in_KiB()
    {
        var type = Types.New(limit: 10 << 20);
        var blocks = new List<nint>();
        for (int i = 0; i < 3; i++)
            blocks.Add((nint)Heap.Malloc(64, type));
        blocks.Add((nint)Heap.Malloc(100_000, type)); // 102400 bytes, bucket 131072
        Heap.Free((void*)blocks[0], type);
        string text = Heap.FormatVmstat();
        // InUse 3, MemUse 128+102400 = 102528 → 101K (rounded up), HighUse 102592 → 101K, Limit 10240K, Requests 4.
        string row = $"{type.ShortDesc,14}     3   101K    101K 10240K        4    0     0  64,131072";
        Assert.Contains("\n" + row + "\n", text);
        foreach (nint p in blocks.Skip(1))
            Heap.Free((void*)p, type);
    }

    [Fact]
    public void Types_of_a_bucket_wrap_near_80_columns_as_vmstat_does()
    {
        var o = new StringBuilder();
        VmstatFormatter.AppendBucketTypes(o, 64, Enumerable.Repeat("abcdefghij", 10).ToList());
        Assert.Equal("      64  abcdefghij, abcdefghij, abcdefghij, abcdefghij, abcdefghij,\n\t  abcdefghij, abcdefghij, abcdefghij, abcdefghij, abcdefghij\n", o.ToString());
    }

    [Fact]
    public void Totals_add_up_the_types()
    {
        var type = Types.New();
        void* p = Heap.Malloc(5000, type);
        string text = Heap.FormatVmstat();
        Heap.Free(p, type);
        string totals = text[(text.IndexOf("Memory totals:") + "Memory totals:  In Use    Free    Requests\n".Length)..].Split('\n')[0];
        Assert.Matches(@"^ {14}[ \d]{6}\dK [ \d]{5}\dK {4}[ \d]{7}\d$", totals);
    }
}
