using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Routing;

namespace EfReplicaInterceptor.Tests.Routing;

/// <summary>A write that certainly did not reach the primary is taken back; nothing else is.</summary>
public sealed class LeaseStateTests
{
    [Test]
    public void A_withdrawn_first_write_leaves_the_lease_and_its_scope_with_nothing_to_wait_for()
    {
        var lease = new LeaseState();
        var ambient = new ScopeState();

        lease.MarkWrite(ambient, timestamp: 10, inTransaction: false);
        lease.WithdrawWrite();

        Assert.That(lease.Scope.IsPending, Is.False);
        Assert.That(lease.Scope.IsActive, Is.False);
        Assert.That(ambient.IsPending, Is.False);
        Assert.That(lease.WriteInFlight, Is.False);
    }

    [Test]
    public void Withdrawing_a_transaction_keeps_an_earlier_write_that_was_not_captured_yet()
    {
        var lease = new LeaseState();
        lease.MarkWrite(null, timestamp: 10, inTransaction: false);
        lease.CompleteWrite(timestamp: 15, committed: false); // completed, position not captured yet

        lease.MarkWrite(null, timestamp: 20, inTransaction: true);
        lease.MarkWrite(null, timestamp: 30, inTransaction: true);
        lease.WithdrawWrite();

        Assert.That(lease.Scope.IsPending, Is.True, "the first write still needs its position");
        Assert.That(lease.Scope.WroteWithin(TimeSpan.FromDays(1), new FixedTime(40)), Is.True);
    }

    [Test]
    public void A_write_of_another_context_in_the_same_scope_is_not_withdrawn()
    {
        var lease = new LeaseState();
        var ambient = new ScopeState();
        lease.MarkWrite(ambient, timestamp: 10, inTransaction: false);
        ambient.MarkWrite(11); // another context of the scope wrote meanwhile

        lease.WithdrawWrite();

        Assert.That(ambient.IsPending, Is.True);
        Assert.That(lease.Scope.IsPending, Is.False);
    }

    private sealed class FixedTime(long now) : TimeProvider
    {
        public override long GetTimestamp() => now;
    }
}
