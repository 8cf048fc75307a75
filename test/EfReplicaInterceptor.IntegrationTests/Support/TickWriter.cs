using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Support;

/// <summary>
/// Inserts a timestamped row on the primary every <c>period</c> (directly, not through the library) and remembers the
/// newest committed timestamp, so a reader can tell how stale what it read was.
/// </summary>
public sealed class TickWriter : IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _lastCommittedTicks;
    private int _written;

    public TickWriter(PostgresServer primary, TimeSpan period)
    {
        _dataSource = NpgsqlDataSource.Create(primary.ConnectionString);
        _loop = Task.Run(async () =>
        {
            await using var connection = await _dataSource.OpenConnectionAsync();
            await using var insert = new NpgsqlCommand("INSERT INTO ticks DEFAULT VALUES RETURNING created_at", connection);
            while (!_stop.IsCancellationRequested)
            {
                var created = (DateTime)(await insert.ExecuteScalarAsync())!;
                Interlocked.Exchange(ref _lastCommittedTicks, created.ToUniversalTime().Ticks);
                Interlocked.Increment(ref _written);
                try
                {
                    await Task.Delay(period, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
    }

    /// <summary>The server timestamp of the newest row whose INSERT has committed.</summary>
    public DateTime LastCommitted => new(Interlocked.Read(ref _lastCommittedTicks), DateTimeKind.Utc);

    public int Written => Volatile.Read(ref _written);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        await _dataSource.DisposeAsync();
        _stop.Dispose();
    }
}
