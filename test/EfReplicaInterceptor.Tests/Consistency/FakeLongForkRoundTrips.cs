using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>The Long Fork wait's round trips, answered from fields; every call recorded in <see cref="Calls"/> as a short text.</summary>
internal sealed class FakeLongForkRoundTrips : ILongForkRoundTrips
{
    public List<string> Calls { get; } = [];

    public PrimaryTransactions Primary { get; set; } = new([], 1, null);

    public long[] OnStandby { get; set; } = [];

    public Queue<int> Invisible { get; } = new();

    public int AlwaysInvisible { get; set; }

    public Exception? Failure { get; set; }

    public Exception? StandbyFailure { get; set; }

    public Action? OnPrimary { get; set; }

    public ValueTask<PrimaryTransactions> ReadPrimaryAsync(bool async, CancellationToken cancellationToken)
    {
        Calls.Add("primary");
        OnPrimary?.Invoke();
        return Failure is null ? ValueTask.FromResult(Primary) : ValueTask.FromException<PrimaryTransactions>(Failure);
    }

    public ValueTask<long[]> CommittedOnStandbyAsync(ReplicaEndpoint standby, PrimaryTransactions primary, bool async, CancellationToken cancellationToken)
    {
        Calls.Add($"standby {standby.Name} [{string.Join(", ", primary.InProgress)}] from {primary.Xmax}");
        return StandbyFailure is null ? ValueTask.FromResult(OnStandby) : ValueTask.FromException<long[]>(StandbyFailure);
    }

    /// <summary>What the primary answers as its running transactions from a snapshot's xmax on (the unfiltered wait).</summary>
    public long[] Running { get; set; } = [];

    public ValueTask<long[]> RunningOnPrimaryAsync(long xmax, bool async, CancellationToken cancellationToken)
    {
        Calls.Add($"running from {xmax}");
        return ValueTask.FromResult(Running);
    }

    public ValueTask<int> InvisibleOnPrimaryAsync(long[] xids, bool async, CancellationToken cancellationToken)
    {
        Calls.Add($"invisible [{string.Join(", ", xids.Order())}]");
        return ValueTask.FromResult(Invisible.Count > 0 ? Invisible.Dequeue() : AlwaysInvisible);
    }
}
