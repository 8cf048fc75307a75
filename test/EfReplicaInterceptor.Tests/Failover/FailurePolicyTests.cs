using EfReplicaInterceptor.Failover;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>The failure policy table, row by row, and the outcome of a write for every phase and transaction state.</summary>
public sealed class FailurePolicyTests
{
    [Test]
    public void Every_failover_error_kind_has_one_row_and_None_has_none()
    {
        var kinds = Enum.GetValues<ServerErrorKind>().Where(kind => kind != ServerErrorKind.None);

        Assert.That(FailurePolicy.All.Select(rule => rule.Kind), Is.EquivalentTo(kinds));
        Assert.That(() => FailurePolicy.For(ServerErrorKind.None), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    // kind, the replica leaves the rotation, its pool is cleared, the primary's pool is cleared, where the read goes next
    [TestCase(ServerErrorKind.Unreachable, true, true, true, ReadFailureNext.AnotherServer)]
    [TestCase(ServerErrorKind.ConnectionLost, true, true, true, ReadFailureNext.AnotherServer)]
    [TestCase(ServerErrorKind.ReadOnly, false, false, true, ReadFailureNext.PrimaryAsWrite)]
    [TestCase(ServerErrorKind.RecoveryConflict, false, false, false, ReadFailureNext.AnotherServer)]
    [TestCase(ServerErrorKind.SessionExpired, false, true, true, ReadFailureNext.AnotherServer)]
    [TestCase(ServerErrorKind.Unresponsive, true, true, true, ReadFailureNext.AnotherServer)]
    public void Each_row_says_what_happens_to_the_server_and_the_read(object kind, bool leaves, bool clearsReplica, bool clearsPrimary, object next)
    {
        var rule = FailurePolicy.For((ServerErrorKind)kind);

        Assert.That((rule.ReplicaLeavesRotation, rule.ClearsReplicaPool, rule.ClearsPrimaryPool, rule.ReadNext), Is.EqualTo((leaves, clearsReplica, clearsPrimary, (ReadFailureNext)next)));
    }

    [Test]
    public void Only_failures_that_say_something_about_the_replica_take_it_out_of_rotation()
    {
        // A read-only refusal means the statement was a write; a recovery conflict cancels one query; an expired idle session
        // is a setting doing its job. None is the replica's fault. A statement's own error (08P01, ...) has no row at all.
        // A replica that did not answer within the deadline (a hung host) is at fault.
        Assert.That(FailurePolicy.All.Where(rule => rule.ReplicaLeavesRotation).Select(rule => rule.Kind),
            Is.EquivalentTo(new[] { ServerErrorKind.Unreachable, ServerErrorKind.ConnectionLost, ServerErrorKind.Unresponsive }));
    }

    // kind, phase, inside an open transaction, is the COMMIT, expected outcome, a word of the expected message
    [TestCase(ServerErrorKind.Unreachable, FailurePhase.Opening, false, false, FailoverOutcome.NotApplied, "could not be reached")]
    [TestCase(ServerErrorKind.ConnectionLost, FailurePhase.Opening, false, false, FailoverOutcome.NotApplied, "could not be reached")]
    [TestCase(ServerErrorKind.Unreachable, FailurePhase.Executing, false, false, FailoverOutcome.NotApplied, "could not be reached")]
    [TestCase(ServerErrorKind.ReadOnly, FailurePhase.Executing, false, false, FailoverOutcome.NotApplied, "read-only")]
    [TestCase(ServerErrorKind.ReadOnly, FailurePhase.Executing, false, true, FailoverOutcome.NotApplied, "read-only")]
    [TestCase(ServerErrorKind.ConnectionLost, FailurePhase.Executing, false, false, FailoverOutcome.Unknown, "after the command was sent")]
    [TestCase(ServerErrorKind.SessionExpired, FailurePhase.Executing, false, false, FailoverOutcome.NotApplied, "nothing ran")]
    [TestCase(ServerErrorKind.SessionExpired, FailurePhase.Executing, false, true, FailoverOutcome.NotApplied, "nothing ran")]
    [TestCase(ServerErrorKind.RecoveryConflict, FailurePhase.Executing, false, false, FailoverOutcome.NotApplied, "recovery conflict")]
    [TestCase(ServerErrorKind.ConnectionLost, FailurePhase.Executing, true, false, FailoverOutcome.NotApplied, "rolls back")]
    [TestCase(ServerErrorKind.ConnectionLost, FailurePhase.Executing, false, true, FailoverOutcome.Unknown, "after COMMIT")]
    [TestCase(ServerErrorKind.Unresponsive, FailurePhase.Executing, false, false, FailoverOutcome.Unknown, "did not answer within the deadline")]
    [TestCase(ServerErrorKind.Unresponsive, FailurePhase.Opening, false, false, FailoverOutcome.NotApplied, "could not be reached")]
    [TestCase(ServerErrorKind.Unresponsive, FailurePhase.Executing, true, false, FailoverOutcome.NotApplied, "rolls back")]
    public void A_write_is_not_applied_unless_its_statement_or_commit_may_have_reached_the_server(
        object kind, object phase, bool inOpenTransaction, bool isCommit, FailoverOutcome expected, string because)
    {
        var (outcome, message) = FailurePolicy.WriteOutcome((ServerErrorKind)kind, (FailurePhase)phase, inOpenTransaction, isCommit);

        Assert.That(outcome, Is.EqualTo(expected));
        Assert.That(message, Does.Contain(because));
    }
}
