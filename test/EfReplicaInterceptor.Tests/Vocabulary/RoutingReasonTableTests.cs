namespace EfReplicaInterceptor.Tests.Vocabulary;

/// <summary>The reason table: one complete row per reason, and what each property means for routing.</summary>
public sealed class RoutingReasonTableTests
{
    [Test]
    public void Every_reason_has_exactly_one_row_in_enum_order()
    {
        var reasons = Enum.GetValues<RoutingReason>();

        Assert.That(RoutingReasonTable.All.Select(row => row.Reason), Is.EqualTo(reasons));
        Assert.That(reasons.Select(reason => RoutingReasonTable.Of(reason).Reason), Is.EqualTo(reasons));
    }

    [Test]
    public void Names_are_unique_kebab_case_and_what_RoutingReasons_reports()
    {
        var names = RoutingReasonTable.All.Select(row => row.Name).ToList();

        Assert.That(names, Is.Unique);
        Assert.That(names, Is.All.Matches("^[a-z]+(-[a-z]+)*$"));
        Assert.That(Enum.GetValues<RoutingReason>().Select(RoutingReasons.GetName), Is.EqualTo(names));
        Assert.That(RoutingReasons.GetName((RoutingReason)999), Is.EqualTo("unknown"));
    }

    // The properties, row by row, as the README's routing table states them.
    [TestCase(RoutingReason.Read, true, false, false, false)]
    [TestCase(RoutingReason.Transaction, false, false, false, true)]
    [TestCase(RoutingReason.WriteStatement, false, false, true, true)]
    [TestCase(RoutingReason.LockingRead, false, false, false, true)]
    [TestCase(RoutingReason.WriteFunction, false, false, true, true)]
    [TestCase(RoutingReason.SessionStatement, false, false, false, true)]
    [TestCase(RoutingReason.Unrecognized, false, false, true, true)]
    [TestCase(RoutingReason.TaggedPrimary, true, false, false, false)]
    [TestCase(RoutingReason.PrimaryScope, true, false, false, false)]
    [TestCase(RoutingReason.AfterWrite, true, false, false, false)]
    [TestCase(RoutingReason.SessionPinned, false, false, false, false)]
    [TestCase(RoutingReason.NoReplica, true, true, false, false)]
    [TestCase(RoutingReason.ReplicaUnavailable, true, true, false, false)]
    [TestCase(RoutingReason.ReplicaLagging, true, true, false, false)]
    [TestCase(RoutingReason.Schema, false, false, false, false)]
    public void Each_row_says_how_the_command_runs_and_what_it_implies(RoutingReason reason, bool runsAsRead, bool countsAsFallback, bool marksWrite, bool pinsSession)
    {
        var row = RoutingReasonTable.Of(reason);

        Assert.That((row.RunsAsRead, row.CountsAsFallback, row.MarksWrite, row.PinsSession), Is.EqualTo((runsAsRead, countsAsFallback, marksWrite, pinsSession)));
    }

    [Test]
    public void A_command_that_writes_or_needs_its_session_is_never_run_as_a_retryable_read()
    {
        Assert.That(RoutingReasonTable.All.Where(row => row.MarksWrite || row.PinsSession).Where(row => row.RunsAsRead), Is.Empty);
    }
}
