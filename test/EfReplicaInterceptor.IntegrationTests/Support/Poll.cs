using System.Diagnostics;

namespace EfReplicaInterceptor.IntegrationTests.Support;

/// <summary>Waiting for a condition the library reaches by itself.</summary>
public static class Poll
{
    /// <summary>Polls <paramref name="condition"/> every 20 ms; fails the test if it is not met within <paramref name="timeout"/>.</summary>
    public static async Task Until(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"condition not met within {timeout}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Polls <paramref name="condition"/> (a query) every 20 ms; fails the test, naming <paramref name="what"/>, if it is not met within <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }
}
