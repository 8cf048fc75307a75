using System.Collections.Concurrent;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// Asks every member of a Patroni cluster, every 50 ms and on its own connection (no pool, 1 s timeout), whether it answers and
/// whether it is in recovery, on a load's clock: when a new leader became writable and when a member answered again, from the
/// servers themselves.
/// </summary>
public sealed class PatroniRoleWatch : IAsyncDisposable
{
    private readonly ConcurrentQueue<(string Member, TimeSpan At, bool? InRecovery, long Lsn, long Rounds)> _samples = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <param name="members">The members to ask (a member added later is not asked).</param>
    /// <param name="clock">The clock of the load the answers are compared with.</param>
    /// <param name="rounds">The library's probe rounds so far, kept with each sample; null for none.</param>
    public PatroniRoleWatch(IReadOnlyList<PatroniMember> members, Func<TimeSpan> clock, Func<long>? rounds = null)
    {
        var connectionStrings = members.ToDictionary(
            member => member.Name,
            member => new NpgsqlConnectionStringBuilder(member.ConnectionString) { Pooling = false, Timeout = 1, CommandTimeout = 1 }.ConnectionString);
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                await Task.WhenAll(connectionStrings.Select(async pair =>
                {
                    var at = clock(); // the probe's start: a conservative time for when the role was reached
                    var round = rounds?.Invoke() ?? 0;
                    bool? inRecovery;
                    long lsn = 0;
                    try
                    {
                        await using var connection = new NpgsqlConnection(pair.Value);
                        await connection.OpenAsync(_stop.Token);
                        await using var command = new NpgsqlCommand(
                            "SELECT pg_is_in_recovery(), (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint",
                            connection);
                        await using var reader = await command.ExecuteReaderAsync(_stop.Token);
                        await reader.ReadAsync(_stop.Token);
                        inRecovery = reader.GetBoolean(0);
                        lsn = reader.IsDBNull(1) ? 0 : reader.GetInt64(1);
                    }
#pragma warning disable CA1031 // a member that does not answer is a sample too
                    catch (Exception)
#pragma warning restore CA1031
                    {
                        inRecovery = null;
                    }

                    _samples.Enqueue((pair.Key, at, inRecovery, lsn, round));
                }));
                try
                {
                    await Task.Delay(50, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
    }

    /// <summary>When <paramref name="member"/> first answered as the primary at or after <paramref name="after"/>; null if it has not.</summary>
    public TimeSpan? FirstWritable(string member, TimeSpan after)
        => _samples.Where(s => s.Member == member && s.At >= after && s.InRecovery == false).Select(s => (TimeSpan?)s.At).Min();

    /// <summary>When <paramref name="member"/> first answered as a standby at or after <paramref name="after"/>; null if it has not.</summary>
    public TimeSpan? FirstStandby(string member, TimeSpan after)
        => _samples.Where(s => s.Member == member && s.At >= after && s.InRecovery == true).Select(s => (TimeSpan?)s.At).Min();

    /// <summary>
    /// The first sample at or after <paramref name="after"/> where <paramref name="member"/> answered as a standby and had replayed
    /// at least what a primary had written by an earlier sample: when it "answers and has replayed". Null if it has not.
    /// </summary>
    public (TimeSpan At, long Rounds)? FirstCaughtUp(string member, TimeSpan after)
    {
        var samples = _samples.ToArray();
        foreach (var sample in samples.Where(s => s.Member == member && s.At >= after && s.InRecovery == true).OrderBy(s => s.At))
        {
            var primary = samples.Where(s => s.InRecovery == false && s.At < sample.At - TimeSpan.FromMilliseconds(10)).Select(s => (long?)s.Lsn).Max();
            if (primary is { } written && sample.Lsn >= written)
            {
                return (sample.At, sample.Rounds);
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
            // stopping
        }

        _stop.Dispose();
    }
}
