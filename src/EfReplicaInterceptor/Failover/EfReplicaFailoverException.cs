using System.Data.Common;

namespace EfReplicaInterceptor;

/// <summary>What is known about a command that failed because of a failover.</summary>
public enum FailoverOutcome
{
    /// <summary>
    /// The command was certainly not applied: the connection could not be opened, the server rejected it as read-only
    /// (the primary was demoted), or the connection was lost inside a transaction that had not been committed (the server
    /// rolls it back). Retrying is safe.
    /// </summary>
    NotApplied = 0,

    /// <summary>
    /// The outcome is unknown: the connection was lost after a write outside a transaction, or a COMMIT, had been sent. It
    /// may or may not have been applied. Check before retrying, or make the unit of work idempotent and use
    /// <see cref="EfReplicaCluster.ExecuteIdempotentAsync(Func{CancellationToken, Task}, CancellationToken)"/>.
    /// </summary>
    Unknown,
}

/// <summary>
/// A write, or a command inside a transaction, failed because the primary failed over. EfReplicaInterceptor never retries
/// those behind the caller's back; this exception says whether the command was certainly not applied or its outcome is
/// unknown. A read that no server could run is reported with it too (always <see cref="FailoverOutcome.NotApplied"/>): its
/// retries are spent and no primary answered within the read deadline (<c>Failover:ReadDeadline</c>). The server's error is the <see cref="Exception.InnerException"/>. It is thrown as it is, unwrapped, from
/// SaveChanges, ExecuteUpdate/ExecuteDelete, ExecuteSql and queries: it is a <see cref="DbException"/> that is not
/// transient, so no execution strategy wraps it or retries it.
/// </summary>
public sealed class EfReplicaFailoverException : DbException
{
    /// <summary>Creates the exception.</summary>
    public EfReplicaFailoverException(FailoverOutcome outcome, string message, Exception innerException)
        : base(message, innerException)
        => Outcome = outcome;

    /// <summary>Whether the command was certainly not applied, or its outcome is unknown.</summary>
    public FailoverOutcome Outcome { get; }

    /// <summary>Never transient: retrying is the caller's decision (see <see cref="Outcome"/>).</summary>
    public override bool IsTransient => false;

    /// <summary>The SQLSTATE of the server's error, when there was one (for example <c>57P01</c> or <c>25006</c>).</summary>
    public override string? SqlState
    {
        get
        {
            // Looks through EF's wrapping (a DbUpdateException around the server's PostgresException).
            for (var current = InnerException; current is not null; current = current.InnerException)
            {
                if (current is DbException { SqlState: { } sqlState })
                {
                    return sqlState;
                }
            }

            return null;
        }
    }

    /// <summary>The failover exception in <paramref name="exception"/> or its inner exceptions, if any.</summary>
    public static EfReplicaFailoverException? Find(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is EfReplicaFailoverException failover)
            {
                return failover;
            }
        }

        return null;
    }
}
