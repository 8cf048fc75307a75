using EfReplicaInterceptor.Consistency;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Routing;

/// <summary>How a command is to be served, before any replica is chosen.</summary>
internal enum RouteKind : byte
{
    /// <summary>The primary, for <see cref="RoutingRule.Reason"/>.</summary>
    Primary,

    /// <summary>Any replica that takes it (else the primary, as a fallback).</summary>
    AnyReplica,

    /// <summary>A replica within the query's staleness budget (else the primary).</summary>
    FreshReplica,

    /// <summary>A replica that has replayed the scopes' writes (else the primary): resolved by the <see cref="Consistency.ConsistencyResolver"/>.</summary>
    ReadYourWrites,
}

/// <summary>The rules' answer.</summary>
internal readonly record struct RoutingRule(RouteKind Kind, RoutingReason Reason)
{
    public static RoutingRule Primary(RoutingReason reason) => new(RouteKind.Primary, reason);
}

/// <summary>Everything the rules look at for one command, gathered by <see cref="CommandRouter"/>.</summary>
internal readonly record struct RoutingFacts
{
    /// <summary>EF's own migration or schema-management command (see <see cref="SchemaCommands"/>).</summary>
    public bool SchemaWork { get; init; }

    /// <summary>The classifier's reason: <see cref="RoutingReason.Read"/> for a plain read, else why it needs the primary.</summary>
    public RoutingReason Statement { get; init; }

    /// <summary>EF's transaction, an ADO.NET one, or an ambient <c>System.Transactions</c> scope.</summary>
    public bool InTransaction { get; init; }

    /// <summary>The query is tagged <c>.UsePrimary()</c>.</summary>
    public bool TaggedPrimary { get; init; }

    /// <summary>The query's staleness budget (<c>.WithMaxStaleness(...)</c>), if any.</summary>
    public TimeSpan? MaxStaleness { get; init; }

    /// <summary>Inside <see cref="EfReplicaScope.ForcePrimary"/>.</summary>
    public bool PrimaryForced { get; init; }

    /// <summary>An earlier command on the open connection needed its session.</summary>
    public bool SessionPinned { get; init; }

    /// <summary>The lease's writes, when they constrain reads.</summary>
    public ScopeState? LeaseWrites { get; init; }

    /// <summary>The ambient consistency scope's writes (or restored token), when they constrain reads.</summary>
    public ScopeState? AmbientWrites { get; init; }

    /// <summary>The cluster has replicas.</summary>
    public bool HasReplicas { get; init; }
}

/// <summary>
/// The routing rules, in order, as a pure function: facts in, rule out; no I/O, no side effects, time from the given
/// <see cref="TimeProvider"/>. The first rule that applies decides:
/// <list type="number">
/// <item>EF's own schema work (migrations, <c>EnsureCreated</c>, <c>EnsureDeleted</c>, <c>CanConnect</c>): the primary
/// (<c>schema</c>), before anything could send one of its existence checks to a replica;</item>
/// <item>a transaction: the primary (<c>transaction</c>);</item>
/// <item>a statement that is not a plain read: the primary, for the classifier's reason;</item>
/// <item>tagged <c>.UsePrimary()</c>: the primary (<c>tagged-primary</c>);</item>
/// <item>inside <see cref="EfReplicaScope.ForcePrimary"/>: the primary (<c>primary-scope</c>);</item>
/// <item>a pinned session: the primary (<c>session-pinned</c>);</item>
/// <item>the lease or the ambient scope wrote (or restored a token): by <see cref="ReadYourWritesMode"/>, the primary
/// (<c>after-write</c>) or a replica that has replayed the writes;</item>
/// <item>no replica configured: the primary (<c>no-replica</c>);</item>
/// <item>a staleness budget: a replica within it;</item>
/// <item>otherwise any replica (<c>read</c>).</item>
/// </list>
/// </summary>
internal sealed class RoutingRules(ReadYourWritesMode readYourWrites, TimeSpan readYourWritesWindow, TimeProvider timeProvider)
{
    public RoutingRule Decide(in RoutingFacts facts)
    {
        if (facts.SchemaWork)
        {
            return RoutingRule.Primary(RoutingReason.Schema);
        }

        if (facts.InTransaction)
        {
            return RoutingRule.Primary(RoutingReason.Transaction);
        }

        if (facts.Statement != RoutingReason.Read)
        {
            return RoutingRule.Primary(facts.Statement);
        }

        if (facts.TaggedPrimary)
        {
            return RoutingRule.Primary(RoutingReason.TaggedPrimary);
        }

        if (facts.PrimaryForced)
        {
            return RoutingRule.Primary(RoutingReason.PrimaryScope);
        }

        if (facts.SessionPinned)
        {
            return RoutingRule.Primary(RoutingReason.SessionPinned);
        }

        if ((facts.LeaseWrites ?? facts.AmbientWrites) is not null && AfterWrite(facts) is { } afterWrite)
        {
            return afterWrite;
        }

        if (!facts.HasReplicas)
        {
            return RoutingRule.Primary(RoutingReason.NoReplica);
        }

        return facts.MaxStaleness is not null
            ? new RoutingRule(RouteKind.FreshReplica, RoutingReason.Read)
            : new RoutingRule(RouteKind.AnyReplica, RoutingReason.Read);
    }

    /// <summary>The rule for a read in scopes that wrote, or null when the read may go to a replica as usual.</summary>
    private RoutingRule? AfterWrite(in RoutingFacts facts)
    {
        switch (readYourWrites)
        {
            case ReadYourWritesMode.Off:
                return null;
            case ReadYourWritesMode.Primary:
                return RoutingRule.Primary(RoutingReason.AfterWrite);
            case ReadYourWritesMode.TimeWindow when facts.LeaseWrites?.RestoredToken is null && facts.AmbientWrites?.RestoredToken is null:
                return facts.LeaseWrites?.WroteWithin(readYourWritesWindow, timeProvider) == true
                       || facts.AmbientWrites?.WroteWithin(readYourWritesWindow, timeProvider) == true
                    ? RoutingRule.Primary(RoutingReason.AfterWrite)
                    : null;
            default:
                return facts.HasReplicas
                    ? new RoutingRule(RouteKind.ReadYourWrites, RoutingReason.AfterWrite)
                    : RoutingRule.Primary(RoutingReason.AfterWrite);
        }
    }
}

/// <summary>
/// Recognises the commands EF runs for migrations and schema management. EF Core 10 marks them
/// <see cref="CommandSource.Migrations"/>: the history table's existence check and its reads (<c>HistoryRepository</c>), every
/// migration command (<c>MigrationCommand</c>: migrations, <c>CreateTables</c>, <c>Create</c>, <c>Delete</c>, the
/// migration lock), and the provider's database existence check (<c>NpgsqlDatabaseCreator.Exists</c>, used by
/// <c>Migrate</c>, <c>EnsureCreated</c>, <c>EnsureDeleted</c> and <c>CanConnect</c>). One check carries no source:
/// <c>NpgsqlDatabaseCreator.HasTables</c> (asked by <c>EnsureCreated</c>) is sent with <see cref="CommandSource.Unknown"/>,
/// so it is recognised by its text.
/// </summary>
internal static class SchemaCommands
{
    // The first line of Npgsql.EntityFrameworkCore.PostgreSQL 10's HasTables query; no application query carries
    // CommandSource.Unknown (EF marks LINQ, raw SQL, SaveChanges and bulk updates with their own source).
    private const string HasTablesPrefix = "SELECT CASE WHEN COUNT(*) = 0 THEN FALSE ELSE TRUE END";

    /// <summary>Whether a command of <paramref name="source"/> with <paramref name="commandText"/> is EF's schema work.</summary>
    public static bool IsSchemaWork(CommandSource source, string? commandText)
        => source == CommandSource.Migrations
           || (source == CommandSource.Unknown && commandText is not null && commandText.StartsWith(HasTablesPrefix, StringComparison.Ordinal));
}
