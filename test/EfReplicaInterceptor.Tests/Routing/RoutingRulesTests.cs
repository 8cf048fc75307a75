using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Time.Testing;

namespace EfReplicaInterceptor.Tests.Routing;

/// <summary>
/// Every routing rule on its own, and their order: each case sets the facts of a rule and of every later rule, so the
/// decision proves the rule applies and that it comes before the later ones. No server, no I/O: the rules are a function.
/// </summary>
public sealed class RoutingRulesTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    private static RoutingRules Rules(ReadYourWritesMode mode = ReadYourWritesMode.WalPosition, FakeTimeProvider? time = null)
        => new(mode, Window, time ?? new FakeTimeProvider());

    private static ScopeState Wrote(FakeTimeProvider? time = null)
    {
        var state = new ScopeState();
        state.MarkWrite((time ?? new FakeTimeProvider()).GetTimestamp());
        return state;
    }

    /// <summary>A plain read on a cluster with replicas, where every later rule would apply too.</summary>
    private static RoutingFacts Everything(RoutingReason statement = RoutingReason.Read) => new()
    {
        Statement = statement,
        InTransaction = true,
        TaggedPrimary = true,
        PrimaryForced = true,
        SessionPinned = true,
        LeaseWrites = Wrote(),
        MaxStaleness = TimeSpan.FromSeconds(1),
        HasReplicas = true,
    };

    public static IEnumerable<TestCaseData> RulesInOrder()
    {
        TestCaseData Case(string name, RoutingFacts facts, RouteKind kind, RoutingReason reason)
            => new TestCaseData(facts, kind, reason).SetName(name);

        var all = Everything();
        yield return Case("0 EF's schema work goes to the primary before anything else", all with { SchemaWork = true }, RouteKind.Primary, RoutingReason.Schema);
        yield return Case("0 EF's schema work that the classifier calls a plain read still goes to the primary",
            new RoutingFacts { Statement = RoutingReason.Read, SchemaWork = true, HasReplicas = true }, RouteKind.Primary, RoutingReason.Schema);
        yield return Case("1 a transaction goes to the primary before anything else", all, RouteKind.Primary, RoutingReason.Transaction);
        foreach (var statement in new[] { RoutingReason.WriteStatement, RoutingReason.LockingRead, RoutingReason.WriteFunction, RoutingReason.SessionStatement, RoutingReason.Unrecognized })
        {
            yield return Case($"2 a statement that needs the primary goes there for its reason ({RoutingReasons.GetName(statement)})",
                Everything(statement) with { InTransaction = false }, RouteKind.Primary, statement);
        }

        yield return Case("3 a query tagged UsePrimary goes to the primary", all with { InTransaction = false }, RouteKind.Primary, RoutingReason.TaggedPrimary);
        yield return Case("4 a read inside ForcePrimary goes to the primary", all with { InTransaction = false, TaggedPrimary = false }, RouteKind.Primary, RoutingReason.PrimaryScope);
        yield return Case("5 a read on a pinned session stays on the primary", all with { InTransaction = false, TaggedPrimary = false, PrimaryForced = false }, RouteKind.Primary, RoutingReason.SessionPinned);
        yield return Case("6 a read after a write must see it", all with { InTransaction = false, TaggedPrimary = false, PrimaryForced = false, SessionPinned = false }, RouteKind.ReadYourWrites, RoutingReason.AfterWrite);
        yield return Case("6 a read in an ambient scope that wrote must see it", all with { InTransaction = false, TaggedPrimary = false, PrimaryForced = false, SessionPinned = false, LeaseWrites = null, AmbientWrites = Wrote() }, RouteKind.ReadYourWrites, RoutingReason.AfterWrite);
        yield return Case("6 a read after a write with no replica goes to the primary as after-write", all with { InTransaction = false, TaggedPrimary = false, PrimaryForced = false, SessionPinned = false, HasReplicas = false }, RouteKind.Primary, RoutingReason.AfterWrite);
        yield return Case("7 no replica configured: the primary", all with { InTransaction = false, TaggedPrimary = false, PrimaryForced = false, SessionPinned = false, LeaseWrites = null, HasReplicas = false }, RouteKind.Primary, RoutingReason.NoReplica);
        yield return Case("8 a staleness budget asks for a fresh replica", all with { InTransaction = false, TaggedPrimary = false, PrimaryForced = false, SessionPinned = false, LeaseWrites = null }, RouteKind.FreshReplica, RoutingReason.Read);
        yield return Case("9 a plain read goes to any replica", new RoutingFacts { Statement = RoutingReason.Read, HasReplicas = true }, RouteKind.AnyReplica, RoutingReason.Read);
    }

    [TestCaseSource(nameof(RulesInOrder))]
    public void Each_rule_applies_before_every_later_one(object facts, object kind, RoutingReason reason)
        => Assert.That(Rules().Decide((RoutingFacts)facts), Is.EqualTo(new RoutingRule((RouteKind)kind, reason)));

    [Test]
    public void Read_your_writes_off_lets_a_read_after_a_write_go_to_any_replica()
    {
        var facts = new RoutingFacts { Statement = RoutingReason.Read, HasReplicas = true, LeaseWrites = Wrote() };

        Assert.That(Rules(ReadYourWritesMode.Off).Decide(facts), Is.EqualTo(new RoutingRule(RouteKind.AnyReplica, RoutingReason.Read)));
    }

    [Test]
    public void Read_your_writes_primary_sends_every_read_after_a_write_to_the_primary()
    {
        var facts = new RoutingFacts { Statement = RoutingReason.Read, HasReplicas = true, LeaseWrites = Wrote() };

        Assert.That(Rules(ReadYourWritesMode.Primary).Decide(facts), Is.EqualTo(RoutingRule.Primary(RoutingReason.AfterWrite)));
    }

    [Test]
    public void Read_your_writes_by_time_window_holds_reads_on_the_primary_only_within_the_window()
    {
        var time = new FakeTimeProvider();
        var rules = Rules(ReadYourWritesMode.TimeWindow, time);
        var facts = new RoutingFacts { Statement = RoutingReason.Read, HasReplicas = true, LeaseWrites = Wrote(time) };

        time.Advance(Window - TimeSpan.FromMilliseconds(1));
        Assert.That(rules.Decide(facts), Is.EqualTo(RoutingRule.Primary(RoutingReason.AfterWrite)), "just inside the window");

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(rules.Decide(facts), Is.EqualTo(new RoutingRule(RouteKind.AnyReplica, RoutingReason.Read)), "the window is over");
    }

    [Test]
    public void Read_your_writes_by_time_window_still_resolves_a_restored_token_by_position()
    {
        var restored = new ScopeState();
        restored.Restore("efr1.token");
        var facts = new RoutingFacts { Statement = RoutingReason.Read, HasReplicas = true, AmbientWrites = restored };

        Assert.That(Rules(ReadYourWritesMode.TimeWindow).Decide(facts), Is.EqualTo(new RoutingRule(RouteKind.ReadYourWrites, RoutingReason.AfterWrite)));
    }

    [Test]
    public void The_rules_have_no_state_the_same_facts_give_the_same_rule()
    {
        var rules = Rules();
        var facts = new RoutingFacts { Statement = RoutingReason.Read, HasReplicas = true };

        Assert.That(Enumerable.Range(0, 3).Select(_ => rules.Decide(facts)).Distinct().Count(), Is.EqualTo(1));
    }

    // What EF Core 10 and Npgsql's provider send for schema work (read from their sources), and what they do not.
    [TestCase(CommandSource.Migrations, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname = '__EFMigrationsHistory')", true, TestName = "the history table's existence check (Migrate)")]
    [TestCase(CommandSource.Migrations, "SELECT \"MigrationId\", \"ProductVersion\" FROM \"__EFMigrationsHistory\" ORDER BY \"MigrationId\";", true, TestName = "the applied migrations")]
    [TestCase(CommandSource.Migrations, "SELECT 1", true, TestName = "the database existence check (EnsureCreated, EnsureDeleted, CanConnect)")]
    [TestCase(CommandSource.Unknown, "SELECT CASE WHEN COUNT(*) = 0 THEN FALSE ELSE TRUE END\nFROM pg_class AS cls", true, TestName = "HasTables (EnsureCreated), which EF sends without a source")]
    [TestCase(CommandSource.Unknown, "SELECT 1", false, TestName = "another command without a source")]
    [TestCase(CommandSource.LinqQuery, "SELECT CASE WHEN COUNT(*) = 0 THEN FALSE ELSE TRUE END\nFROM pg_class AS cls", false, TestName = "an application query with the same text")]
    [TestCase(CommandSource.FromSqlQuery, "SELECT * FROM \"__EFMigrationsHistory\"", false, TestName = "an application raw query of the history table")]
    public void Schema_work_is_recognised_by_EFs_command_source(CommandSource source, string sql, bool schema)
        => Assert.That(SchemaCommands.IsSchemaWork(source, sql), Is.EqualTo(schema));
}
