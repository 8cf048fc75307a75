using EfReplicaInterceptor.Consistency;

namespace EfReplicaInterceptor.Tests.Consistency;

public sealed class ScopeStateTests
{
    [Test]
    public void A_capture_that_started_before_a_later_write_does_not_cover_it()
    {
        var state = new ScopeState();
        state.MarkWrite(1);
        var generation = state.Generation;

        state.MarkWrite(2); // completes while the capture runs
        state.Satisfy(lsn: 100, systemIdentifier: 7, generation);

        Assert.That(state.IsPending, Is.True, "the later write still needs its own position");
        Assert.That(state.RequiredLsn, Is.EqualTo(100));
    }

    [Test]
    public void A_capture_after_the_writes_clears_the_pending_flag_and_positions_only_move_forward()
    {
        var state = new ScopeState();
        state.MarkWrite(1);
        state.Satisfy(200, 7, state.Generation);
        state.Require(150, 7);

        Assert.That(state.IsPending, Is.False);
        Assert.That(state.RequiredLsn, Is.EqualTo(200));
        Assert.That(state.IsActive, Is.True);
    }

    [Test]
    public void A_future_token_is_clamped_but_never_below_a_position_the_scope_captured()
    {
        var state = new ScopeState();
        state.MarkWrite(1);
        state.Satisfy(500, 7, state.Generation);
        state.RequireUnverified(ulong.MaxValue / 2, 7, since: 10);

        state.Clamp(primaryLsn: 400);

        Assert.That(state.RequiredLsn, Is.EqualTo(500));
        Assert.That(state.UnverifiedSince, Is.Zero);
    }

    [Test]
    public void Reset_starts_a_new_lease_clean()
    {
        var state = new ScopeState();
        state.MarkWrite(1);
        state.Restore("efr1.token");

        state.Reset();

        Assert.That((state.IsActive, state.IsPending, state.RequiredLsn, state.RestoredToken, state.HasWritten), Is.EqualTo((false, false, 0UL, (string?)null, false)));
    }
}
