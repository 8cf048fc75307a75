using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// When one server last showed a sign of life: a health probe it answered, or a command the library ran there that
/// completed. The monitor probes every server on its own schedule, so a healthy server answers at least once per
/// <c>HealthCheckInterval + HealthCheckTimeout</c>; a hung one stops answering everything at once. That is how a
/// <see cref="OperationWatch"/> tells a server that cannot answer from a query that is merely slow. Thread-safe: one
/// volatile write per answer.
/// </summary>
internal sealed class ServerLiveness(TimeProvider timeProvider)
{
    private long _lastAnswer = timeProvider.GetTimestamp();

    /// <summary>The <see cref="TimeProvider"/> timestamp of the last answer (the creation time until the first one).</summary>
    public long LastAnswer => Volatile.Read(ref _lastAnswer);

    /// <summary>The server answered something just now.</summary>
    public void Answered() => Volatile.Write(ref _lastAnswer, timeProvider.GetTimestamp());

    /// <summary>
    /// Whether an error came from the server itself, so that it shows the server is not hung. A FATAL of class 08 (connection
    /// exception) does not: it says the way to the server is broken, and behind a pooler it is the pooler that says it
    /// (PgBouncer's 08P01 "server conn crashed?", "server login has been failing", "pgbouncer cannot connect to server"), while
    /// reads it had already taken wait inside it for a server that is gone. Counting those as the server's answers kept the
    /// read deadline from ever firing there, and such reads ran into Npgsql's command timeout (30 s) instead.
    /// </summary>
    public static bool IsServerAnswer(PostgresException error)
        => !(error.SqlState.StartsWith("08", StringComparison.Ordinal) && error.InvariantSeverity is "FATAL" or "PANIC");
}
