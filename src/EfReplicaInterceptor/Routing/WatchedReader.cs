using System.Collections;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using EfReplicaInterceptor.Failover;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// The reader of a read the library ran on a connection of its own, as EF consumes it: the read's
/// <see cref="OperationWatch"/> stays on until the reader is closed or disposed, timing every call that can wait on the
/// server (a read, the next result, the close that drains the rest). A server that hangs while EF reads the rows is
/// abandoned at the read deadline: its connection is broken (never pooled again) and the caller gets an
/// <see cref="EfReplicaFailoverException"/> saying how many rows it had; those rows were handed over, so nothing is retried.
/// </summary>
/// <remarks>
/// The first row is read before the reader is handed to EF (<see cref="ReaderOperation"/>), under the read's retries. A
/// synchronous read, or an asynchronous one that has to wait, costs the watch a timestamp and two writes; an asynchronous read
/// of a row already buffered costs it nothing; the watch's one timer does the looking. Column getters do not wait on
/// the server (Npgsql buffers the whole row unless <see cref="CommandBehavior.SequentialAccess"/>, which the library does not use).
/// </remarks>
internal sealed class WatchedReader(NpgsqlDataReader inner, bool first) : DbDataReader
{
    private static readonly Task<bool> True = Task.FromResult(true);
    private static readonly Task<bool> False = Task.FromResult(false);

    private OperationWatch? _watch;
    private ReadResultSource _source;
    private bool _firstPending = true;
    private bool _ended;
    private long _rows;

    /// <summary>The rows EF has been handed.</summary>
    public long Rows => _rows;

    /// <summary>From now on the reader is EF's: <paramref name="watch"/> times its calls and ends when it is closed.</summary>
    public void Watch(OperationWatch watch, in ReadResultSource source)
    {
        _source = source;
        _watch = watch;
        watch.BeginResult();
    }

    public override bool Read()
    {
        if (_firstPending)
        {
            return TakeFirst();
        }

        _watch?.Enter();
        try
        {
            var more = inner.Read();
            _watch?.Exit();
            _rows += more ? 1 : 0;
            return more;
        }
        catch (Exception exception) when (Failed(exception) is { } failure)
        {
            throw failure;
        }
    }

    public override Task<bool> ReadAsync(CancellationToken cancellationToken)
    {
        if (_firstPending)
        {
            return TakeFirst() ? True : False;
        }

        cancellationToken.ThrowIfCancellationRequested();
        Task<bool> pending;
        try
        {
            // The caller's token is the watch's (see OperationWatch): Npgsql's cancellation would hang on a hung server.
            pending = inner.ReadAsync(CancellationToken.None);
        }
        catch (Exception exception) when (Failed(exception) is { } failure)
        {
            throw failure;
        }

        if (!pending.IsCompletedSuccessfully)
        {
            // Only a call that waits is timed, from here: Npgsql's asynchronous read never blocks before it returns its
            // task, and a row already buffered (most rows) comes back completed, without a clock read per row.
            _watch?.Enter();
            return Awaited(pending);
        }

        _rows += pending.Result ? 1 : 0;
        return pending;
    }

    public override bool NextResult()
    {
        _firstPending = false;
        _watch?.Enter();
        try
        {
            var more = inner.NextResult();
            _watch?.Exit();
            return more;
        }
        catch (Exception exception) when (Failed(exception) is { } failure)
        {
            throw failure;
        }
    }

    public override async Task<bool> NextResultAsync(CancellationToken cancellationToken)
    {
        _firstPending = false;
        cancellationToken.ThrowIfCancellationRequested();
        _watch?.Enter();
        try
        {
            var more = await inner.NextResultAsync(CancellationToken.None).ConfigureAwait(false);
            _watch?.Exit();
            return more;
        }
        catch (Exception exception) when (Failed(exception) is { } failure)
        {
            throw failure;
        }
    }

    // Closing drains the rest of the result from the server: watched too. A close the watch had to break, or one whose session
    // died under it (a failover error: the server restarted, crashed or ended the session), is not an error of the caller's:
    // it has every row it asked for, so the failure is reported (event 1008, the failure policy for the server) and not
    // thrown. Anything else is Npgsql's, as it is.
    public override void Close()
    {
        _watch?.Enter();
        try
        {
            inner.Close();
        }
        catch (Exception exception) when (_ended || Abandoned(exception) || Lost(exception))
        {
            // Already reported (a call that failed before), abandoned or lost here: the caller has every row it asked for.
        }
        finally
        {
            End();
        }
    }

    public override async Task CloseAsync()
    {
        _watch?.Enter();
        try
        {
            await inner.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception exception) when (_ended || Abandoned(exception) || Lost(exception))
        {
            // Already reported (a call that failed before), abandoned or lost here: the caller has every row it asked for.
        }
        finally
        {
            End();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Close();
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await CloseAsync().ConfigureAwait(false);
        await inner.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    private bool TakeFirst()
    {
        _firstPending = false;
        _rows += first ? 1 : 0;
        return first;
    }

    private async Task<bool> Awaited(Task<bool> pending)
    {
        try
        {
            var more = await pending.ConfigureAwait(false);
            _watch?.Exit();
            _rows += more ? 1 : 0;
            return more;
        }
        catch (Exception exception) when (Failed(exception) is { } failure)
        {
            throw failure;
        }
    }

    /// <summary>The exception for a call that failed, or null to let the server's own error through (the statement's).</summary>
    private Exception? Failed(Exception exception)
    {
        if (_watch is not { } watch || _ended)
        {
            return null; // still inside the library's read (its retries), or already reported
        }

        _ended = true;
        return _source.Executor.ResultFailed(_source, watch, watch.Complete(), exception, _rows);
    }

    private bool Abandoned(Exception exception)
    {
        if (_watch is not { } watch || watch.Complete() == WatchVerdict.None)
        {
            return false;
        }

        _ended = true;
        _ = _source.Executor.ResultFailed(_source, watch, WatchVerdict.Unresponsive, exception, _rows); // logged and reported
        return true;
    }

    /// <summary>The close failed because the session is gone (a failover error): reported as the read's failure, true; else false.</summary>
    private bool Lost(Exception exception)
    {
        if (_watch is not { } watch)
        {
            return false;
        }

        _ended = true;
        return _source.Executor.ResultFailed(_source, watch, watch.Complete(), exception, _rows) is EfReplicaFailoverException;
    }

    private void End()
    {
        if (!_ended && _watch is { } watch)
        {
            _ended = true;
            watch.Complete();
        }
    }

    public override object this[int ordinal] => inner[ordinal];

    public override object this[string name] => inner[name];

    public override int Depth => inner.Depth;

    public override int FieldCount => inner.FieldCount;

    public override int VisibleFieldCount => inner.VisibleFieldCount;

    public override bool HasRows => inner.HasRows;

    public override bool IsClosed => inner.IsClosed;

    public override int RecordsAffected => inner.RecordsAffected;

    public override bool GetBoolean(int ordinal) => inner.GetBoolean(ordinal);

    public override byte GetByte(int ordinal) => inner.GetByte(ordinal);

    public override long GetBytes(int ordinal, long dataOffset, byte[]? buffer, int bufferOffset, int length) => inner.GetBytes(ordinal, dataOffset, buffer, bufferOffset, length);

    public override char GetChar(int ordinal) => inner.GetChar(ordinal);

    public override long GetChars(int ordinal, long dataOffset, char[]? buffer, int bufferOffset, int length) => inner.GetChars(ordinal, dataOffset, buffer, bufferOffset, length);

    public override string GetDataTypeName(int ordinal) => inner.GetDataTypeName(ordinal);

    public override DateTime GetDateTime(int ordinal) => inner.GetDateTime(ordinal);

    public override decimal GetDecimal(int ordinal) => inner.GetDecimal(ordinal);

    public override double GetDouble(int ordinal) => inner.GetDouble(ordinal);

    [return: DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields | DynamicallyAccessedMemberTypes.PublicProperties)]
    public override Type GetFieldType(int ordinal) => inner.GetFieldType(ordinal);

    public override T GetFieldValue<T>(int ordinal) => inner.GetFieldValue<T>(ordinal);

    public override Task<T> GetFieldValueAsync<T>(int ordinal, CancellationToken cancellationToken) => inner.GetFieldValueAsync<T>(ordinal, cancellationToken);

    public override float GetFloat(int ordinal) => inner.GetFloat(ordinal);

    public override Guid GetGuid(int ordinal) => inner.GetGuid(ordinal);

    public override short GetInt16(int ordinal) => inner.GetInt16(ordinal);

    public override int GetInt32(int ordinal) => inner.GetInt32(ordinal);

    public override long GetInt64(int ordinal) => inner.GetInt64(ordinal);

    public override string GetName(int ordinal) => inner.GetName(ordinal);

    public override int GetOrdinal(string name) => inner.GetOrdinal(name);

    public override string GetString(int ordinal) => inner.GetString(ordinal);

    public override object GetValue(int ordinal) => inner.GetValue(ordinal);

    public override int GetValues(object[] values) => inner.GetValues(values);

    public override bool IsDBNull(int ordinal) => inner.IsDBNull(ordinal);

    public override Task<bool> IsDBNullAsync(int ordinal, CancellationToken cancellationToken) => inner.IsDBNullAsync(ordinal, cancellationToken);

    public override Stream GetStream(int ordinal) => inner.GetStream(ordinal);

    public override TextReader GetTextReader(int ordinal) => inner.GetTextReader(ordinal);

    [return: DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields | DynamicallyAccessedMemberTypes.PublicProperties)]
    public override Type GetProviderSpecificFieldType(int ordinal) => inner.GetProviderSpecificFieldType(ordinal);

    public override object GetProviderSpecificValue(int ordinal) => inner.GetProviderSpecificValue(ordinal);

    public override int GetProviderSpecificValues(object[] values) => inner.GetProviderSpecificValues(values);

    public override DataTable? GetSchemaTable() => inner.GetSchemaTable();

    public override Task<DataTable?> GetSchemaTableAsync(CancellationToken cancellationToken = default) => inner.GetSchemaTableAsync(cancellationToken);

    public override IEnumerator GetEnumerator() => new DbEnumerator(this, closeReader: false);
}
