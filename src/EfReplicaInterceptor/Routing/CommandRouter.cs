using System.Data;
using System.Data.Common;
using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// The per-command path of one cluster: classify the statement, record what it implies for its lease (a write, a pinned
/// session), apply the <see cref="RoutingRules"/>, choose the replica (the <see cref="ConsistencyResolver"/>, for the
/// lease's and the ambient scope's reads), and hand plain reads to the <see cref="ReadExecutor"/>. One per cluster,
/// shared by every context using it: it holds no per-call state in fields.
/// </summary>
internal sealed class CommandRouter
{
    private readonly RoutingRules _rules;
    private readonly ReplicaSelector _selector;
    private readonly ConsistencyResolver _consistency;
    private readonly ReadExecutor _reads;
    private readonly RoutingTelemetry _telemetry;
    private readonly TimeProvider _timeProvider;
    private volatile SqlClassifier? _classifier; // null while the application's functions are still being learned

    public CommandRouter(
        RoutingRules rules,
        ReplicaSelector selector,
        ConsistencyResolver consistency,
        ReadExecutor reads,
        RoutingTelemetry telemetry,
        WriteFailureTranslator failures,
        EfCommandWatchdog efCommands,
        SqlClassifier? classifier,
        TimeProvider timeProvider)
    {
        Failures = failures;
        EfCommands = efCommands;
        _rules = rules;
        _selector = selector;
        _consistency = consistency;
        _reads = reads;
        _telemetry = telemetry;
        _classifier = classifier;
        _timeProvider = timeProvider;
    }

    /// <summary>Turns a failover error on EF's own (primary) connection into a typed outcome.</summary>
    public WriteFailureTranslator Failures { get; }

    /// <summary>The deadline of the commands EF runs on its own (primary) connection; stopped by the interceptor when they end.</summary>
    public EfCommandWatchdog EfCommands { get; }

    /// <summary>Installs the classifier that knows the application's learned volatile functions.</summary>
    public void UseClassifier(SqlClassifier classifier) => _classifier = classifier;

    /// <summary>
    /// Routes one command: returns <paramref name="result"/> unchanged when EF is to run it on its own (primary) connection,
    /// or the result of the read the library ran. With <paramref name="async"/> false every step runs synchronously and the
    /// returned task is complete.
    /// </summary>
    public async ValueTask<InterceptionResult<T>> RouteAsync<T>(
        DbCommand command,
        CommandEventData eventData,
        LeaseState? lease,
        InterceptionResult<T> result,
        ReadOperation<T> operation,
        bool async,
        CancellationToken cancellationToken)
    {
        if (result.HasResult)
        {
            return result; // another interceptor already answered
        }

        // The command's efreplica.route span: null, and nothing allocated, while no listener samples the library's source.
        // One method, not a wrapper: a second async method would box a second state machine whenever the read awaits.
        var activity = RouteActivity.Start();
        try
        {
            var decision = Decide(command, eventData.CommandSource, lease);
            if (decision.NeedsResolving)
            {
                decision = await ResolveAsync(decision, OpenOnPrimary(command), async, cancellationToken).ConfigureAwait(false);
            }

            // A read for the primary runs on EF's connection when the application holds it open (Database.OpenConnection()):
            // that session is the application's, and a second primary connection for the same unit of work is not needed.
            if (_telemetry.IsShadowMode
                || !RoutingReasonTable.Of(decision.Reason).RunsAsRead
                || (decision.Replica is null && command.Connection is { State: ConnectionState.Open }))
            {
                // Whatever sends it to the primary (a write, a transaction, a pinned session, UsePrimary(), the resolver): a scope
                // that read on a standby first waits until the primary shows what that standby showed (the Long Fork wait;
                // nothing to do, and no lock, for the others).
                await _consistency.BeforePrimaryAsync(lease?.Scope, async, cancellationToken).ConfigureAwait(false);
                if (!RoutingReasonTable.Of(decision.Reason).MarksWrite)
                {
                    // EF runs it on the primary (a read in a transaction, on a pinned session, a locking read): the scopes saw the
                    // primary's data, which a later read elsewhere must not go behind. A write's own result is read-your-writes'.
                    _consistency.RunsOnPrimary(lease?.Scope);
                }

                if (command.Connection is { State: ConnectionState.Closed } deferred)
                {
                    await OpenDeferredAsync(deferred, lease, async, cancellationToken).ConfigureAwait(false);
                }

                // Reported once the connection is open, so that the server is the one it reached (a multi-host string has several).
                _telemetry.Report(eventData, decision.Target, decision.Reason, decision.Replica, ServerAddress.Of(command.Connection));

                EfCommands.Start(command);
                return result; // EF runs it on its own connection
            }

            var value = await _reads.ExecuteAsync((NpgsqlCommand)command, eventData, lease, decision, this, operation, async, cancellationToken).ConfigureAwait(false);
            return InterceptionResult<T>.SuppressWithResult(value);
        }
        catch (Exception exception) when (RouteActivity.Failed(activity, exception))
        {
            throw; // never reached: the filter only marks the span
        }
        finally
        {
            activity?.Dispose();
        }
    }

    /// <summary>
    /// The target of <paramref name="command"/>, and the bookkeeping its kind implies for <paramref name="lease"/> (a write
    /// marks the lease and the ambient scope as having written; a command that needs its session pins the open connection
    /// to the primary). <paramref name="source"/> is what EF says the command is for (<c>CommandEventData.CommandSource</c>).
    /// </summary>
    public RoutingDecision Decide(DbCommand command, CommandSource source, LeaseState? lease)
    {
        var statement = Classify(command);
        // EF sets command.Transaction from its connection's current transaction (BeginTransaction and UseTransaction
        // alike); an ambient TransactionScope shows only in Transaction.Current. context.Database is not touched: its
        // first use resolves the database facade's dependencies, about 0.9 KB per context.
        var inTransaction = command.Transaction is not null || System.Transactions.Transaction.Current is not null;
        var ambient = EfReplicaScope.CurrentConsistency?.StateFor(_consistency);
        var statementInfo = RoutingReasonTable.Of(statement);
        if (statementInfo.MarksWrite)
        {
            var now = _timeProvider.GetTimestamp();
            if (lease is not null)
            {
                lease.MarkWrite(ambient, now, inTransaction: command.Transaction is not null);
            }
            else
            {
                ambient?.MarkWrite(now);
            }
        }

        if (lease is not null && (inTransaction || statementInfo.PinsSession))
        {
            lease.PinSession();
        }

        var facts = new RoutingFacts
        {
            Statement = statement,
            InTransaction = inTransaction,
            SchemaWork = SchemaCommands.IsSchemaWork(source, command.CommandText),
        };
        if (!inTransaction && statement == RoutingReason.Read && !facts.SchemaWork)
        {
            // Only a plain read looks further (its tags, the scopes): nothing more is read for the others.
            var tags = QueryTags.Read(command.CommandText);
            facts = facts with
            {
                TaggedPrimary = tags.UsePrimary,
                MaxStaleness = tags.MaxStaleness,
                PrimaryForced = EfReplicaScope.IsPrimaryForced,
                SessionPinned = lease?.SessionPinned == true,
                LeaseWrites = lease is { Scope.IsActive: true } ? lease.Scope : null,
                AmbientWrites = ambient is { IsActive: true } ? ambient : null,
                HasReplicas = _selector.HasReplicas,
            };
        }

        var rule = _rules.Decide(facts);
        switch (rule.Kind)
        {
            case RouteKind.ReadYourWrites:
                return RoutingDecision.ReadYourWrites(lease?.Scope, ambient); // their past reads count even without writes
            case RouteKind.FreshReplica or RouteKind.AnyReplica:
                return ScopeRead(lease?.Scope, ambient, rule.Kind == RouteKind.FreshReplica ? ReplicaRequirement.FreshWithin(facts.MaxStaleness!.Value) : ReplicaRequirement.Any);
            default:
                return RoutingDecision.Primary(rule.Reason);
        }
    }

    /// <summary>
    /// Opens EF's connection, left closed when EF opened it for a reader (see <c>ReplicaConnectionInterceptor</c>), now that
    /// the command needs the primary, within the library's read deadline (see <see cref="EfCommandWatchdog.OpenAsync"/>). A
    /// failure is a typed outcome: nothing was sent.
    /// </summary>
    private async ValueTask OpenDeferredAsync(DbConnection connection, LeaseState? lease, bool async, CancellationToken cancellationToken)
    {
        try
        {
            await EfCommands.OpenAsync(connection, async, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            if (Failures.Translate(exception, FailurePhase.Opening, inOpenTransaction: false, isCommit: false, connection) is { } failover)
            {
                lease?.WithdrawWrite(); // nothing was sent
                throw failover;
            }

            throw;
        }
    }

    /// <summary>
    /// A plain read of <paramref name="lease"/> and <paramref name="ambient"/>: their own replica, or the balancing policy's
    /// replica (which becomes theirs) when they have no past, decided at once; otherwise resolved later.
    /// </summary>
    private RoutingDecision ScopeRead(ScopeState? lease, ScopeState? ambient, ReplicaRequirement requirement)
    {
        if (!_consistency.TryChoose(lease, ambient, requirement, out var replica, out var lagging, out var hadPast))
        {
            return RoutingDecision.ScopeRead(lease, ambient, requirement);
        }

        return replica is not null
            ? RoutingDecision.Read(replica, constrained: hadPast || requirement.IsConstrained)
            : RoutingDecision.Primary(lagging ? RoutingReason.ReplicaLagging : RoutingReason.ReplicaUnavailable);
    }

    /// <summary>
    /// Resolves a read that must see its scopes' writes, or must not go behind what they saw (see
    /// <see cref="ConsistencyResolver.ResolveAsync"/>).
    /// </summary>
    public async ValueTask<RoutingDecision> ResolveAsync(RoutingDecision decision, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var choice = await _consistency.ResolveAsync(decision.LeaseScope, decision.AmbientScope, decision.Requirement, decision.WritesMustShow, primaryConnection, async, cancellationToken).ConfigureAwait(false);
        return choice.Replica is { } replica ? RoutingDecision.Read(replica, choice.Constrained) : RoutingDecision.ResolvedToPrimary(choice.Reason, decision);
    }

    /// <summary>
    /// EF's connection for <paramref name="command"/> when it is open and idle (no reader on it, nothing executing): it is the
    /// primary's (EF's connection string is the cluster's primary; a tenant's is checked against its binding before this), so
    /// a position capture can run on it instead of taking a second primary connection. Null when EF's open was deferred.
    /// </summary>
    private static NpgsqlConnection? OpenOnPrimary(DbCommand command)
        => command.Connection is NpgsqlConnection { FullState: ConnectionState.Open } open && command.Transaction is null ? open : null;

    /// <summary>
    /// A write command finished (its reader was disposed, its non-query returned) or a transaction committed: the scopes it
    /// wrote in record the write again, so that a position captured while it was running is not taken as covering it.
    /// </summary>
    public void WriteCompleted(LeaseState? lease, bool committed)
    {
        if (lease is { WriteInFlight: true }) // else the usual case: a read finished
        {
            lease.CompleteWrite(_timeProvider.GetTimestamp(), committed);
        }
    }

    private RoutingReason Classify(DbCommand command)
    {
        // Only Npgsql text commands can be replayed on a replica connection (their parameters are cloneable).
        if (command is not NpgsqlCommand || command.CommandType != CommandType.Text)
        {
            return RoutingReason.Unrecognized;
        }

        // Until the volatile functions of the application's schemas are known, a read might call one: primary.
        return _classifier?.ClassifyCached(command.CommandText).Reason ?? RoutingReason.Unrecognized;
    }
}
