using Npgsql;
using Npgsql.PostgresTypes;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// What a replica's data source knows of the server's types. Npgsql loads them once, on the pool's first connection (the
/// monitor's first probe, usually at start-up): a type created later (an enum an in-process migration added, after which
/// EF reloads the types of the primary's connection only) is unknown to the replica's sessions, and a read of it there
/// failed ("Reading as 'Mood' is not supported for fields having DataTypeName '-.-'") where the same read on the primary
/// succeeded. A replica read whose result names a type its session does not know (<see cref="Lacks"/>) reloads the
/// replica's types and runs again, before any row reaches EF (<see cref="Routing.ReaderOperation"/>); a type still unknown
/// after a reload is one Npgsql does not load (a table's row type) and is not reloaded for again.
/// </summary>
internal sealed class ReplicaTypes(TimeProvider timeProvider)
{
    private readonly object _gate = new();
    private long _reloadedAt = long.MinValue;
    private uint[] _unloadable = [];

    /// <summary>A timestamp to pass to <see cref="ReloadedSince"/>.</summary>
    public long Now => timeProvider.GetTimestamp();

    /// <summary>How many times a read reloaded the types (for tests and diagnostics).</summary>
    public int Reloads => Volatile.Read(ref _reloads);

    private int _reloads;

    /// <summary>Whether the result names a type the session's loaded types lack, other than one a reload did not bring.</summary>
    public bool Lacks(NpgsqlDataReader reader)
    {
        var fields = reader.FieldCount;
        for (var i = 0; i < fields; i++)
        {
            if (reader.GetPostgresType(i) is UnknownBackendType && Array.IndexOf(Volatile.Read(ref _unloadable), reader.GetDataTypeOID(i)) < 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether another read reloaded the types after <paramref name="timestamp"/> (a session rented since has them).</summary>
    public bool ReloadedSince(long timestamp) => Volatile.Read(ref _reloadedAt) > timestamp;

    /// <summary>A read reloaded the types.</summary>
    public void Reloaded()
    {
        Volatile.Write(ref _reloadedAt, timeProvider.GetTimestamp());
        Interlocked.Increment(ref _reloads);
    }

    /// <summary>The result still names types its session does not know after a reload: Npgsql does not load them; not reloaded for again.</summary>
    public void StillUnknown(NpgsqlDataReader reader)
    {
        lock (_gate)
        {
            var known = new List<uint>(_unloadable);
            for (var i = 0; i < reader.FieldCount; i++)
            {
                if (reader.GetPostgresType(i) is UnknownBackendType && !known.Contains(reader.GetDataTypeOID(i)))
                {
                    known.Add(reader.GetDataTypeOID(i));
                }
            }

            Volatile.Write(ref _unloadable, [.. known]);
        }
    }
}
