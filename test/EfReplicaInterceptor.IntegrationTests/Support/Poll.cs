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
}
