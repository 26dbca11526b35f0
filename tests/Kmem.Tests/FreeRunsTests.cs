// FreeRunsTests.cs — the first-fit run allocator behind kmem_map units and physical regions.
using Kmem.Pages;
using Xunit;

namespace Kmem.Tests;

public class FreeRunsTests
{
    [Fact]
    public void First_fit_takes_from_the_lowest_run_and_returns_coalesce()
    {
        var runs = new FreeRuns(100);
        Assert.Equal(0, runs.Take(10));
        Assert.Equal(10, runs.Take(20));
        Assert.Equal(30, runs.Take(70));
        Assert.Equal(-1, runs.Take(1));
        runs.Put(10, 20);
        Assert.Equal(-1, runs.Take(21));
        runs.Put(0, 10);    // merges with [10, 30)
        runs.Put(30, 70);   // merges into [0, 100)
        Assert.Equal(0, runs.Take(100));
    }
}
