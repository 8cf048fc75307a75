using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>The exact list of errors treated as failover, and those that never are.</summary>
public sealed class FailoverErrorsTests
{
    private static PostgresException Postgres(string sqlState) => new("message", "ERROR", "ERROR", sqlState);

    private static PostgresException Fatal(string sqlState) => new("message", "FATAL", "FATAL", sqlState);

    public static IEnumerable<TestCaseData> Cases()
    {
        TestCaseData Case(Exception exception, FailurePhase phase, bool onStandby, ServerErrorKind expected, string name)
            => new TestCaseData(exception, phase, onStandby, expected).SetName(name);

        // Opening: nothing was sent.
        yield return Case(new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused)), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "connection refused while opening");
        yield return Case(new NpgsqlException("The operation has timed out", new TimeoutException()), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "connect timeout while opening");
        yield return Case(Postgres("57P03"), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "57P03 cannot connect now");
        yield return Case(Postgres("53300"), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "53300 too many connections");
        yield return Case(Postgres("08006"), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "08006 while opening");
        yield return Case(Fatal("08001"), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "08001 unable to establish a connection");
        yield return Case(Fatal("57P01"), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "57P01 while opening: the server is shutting down");
        yield return Case(Fatal("28000"), FailurePhase.Opening, false, ServerErrorKind.None, "28000 no pg_hba.conf entry: a FATAL while opening that is not listed is configuration");
        yield return Case(Fatal("08P01"), FailurePhase.Opening, false, ServerErrorKind.None, "08P01 while opening is configuration (a protocol mismatch), not a down server");
        yield return Case(Postgres("28P01"), FailurePhase.Opening, false, ServerErrorKind.None, "28P01 bad password is configuration, not failover");
        yield return Case(Postgres("3D000"), FailurePhase.Opening, false, ServerErrorKind.None, "3D000 missing database is configuration, not failover");

        // Executing.
        yield return Case(Postgres("57P01"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "57P01 admin shutdown");
        yield return Case(Postgres("57P02"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "57P02 crash shutdown");
        yield return Case(Postgres("08006"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "08006 connection failure");
        yield return Case(new NpgsqlException("Exception while reading from stream", new EndOfStreamException()), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "end of stream from a killed server");
        yield return Case(new NpgsqlException("Exception while writing to stream", new IOException("reset")), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "connection reset while executing");
        yield return Case(Postgres("25006"), FailurePhase.Executing, false, ServerErrorKind.ReadOnly, "25006 on a demoted primary");
        yield return Case(Postgres("25006"), FailurePhase.Executing, true, ServerErrorKind.ReadOnly, "25006 on a standby");
        yield return Case(Postgres("40001"), FailurePhase.Executing, true, ServerErrorKind.RecoveryConflict, "40001 on a standby is a recovery conflict");
        yield return Case(Postgres("40001"), FailurePhase.Executing, false, ServerErrorKind.None, "40001 on the primary is a serialization failure");
        yield return Case(Postgres("40P01"), FailurePhase.Executing, true, ServerErrorKind.RecoveryConflict, "40P01 on a standby is a buffer-pin recovery conflict");
        yield return Case(Postgres("40P01"), FailurePhase.Executing, false, ServerErrorKind.None, "40P01 on the primary is the caller's deadlock");
        yield return Case(Fatal("40001"), FailurePhase.Executing, true, ServerErrorKind.RecoveryConflict, "40001 FATAL on a standby (conflict with an idle transaction) is a recovery conflict");
        yield return Case(Fatal("57P05"), FailurePhase.Executing, true, ServerErrorKind.SessionExpired, "57P05 idle-session timeout on a standby: nothing ran");
        yield return Case(Fatal("57P05"), FailurePhase.Executing, false, ServerErrorKind.SessionExpired, "57P05 idle-session timeout on the primary: nothing ran");
        yield return Case(Fatal("57P05"), FailurePhase.Opening, true, ServerErrorKind.SessionExpired, "57P05 in a check that opens and runs at once is still an expired session, not a down server");

        // The session's fate decides, not the SQLSTATE's class.
        yield return Case(Postgres("08P01"), FailurePhase.Executing, false, ServerErrorKind.None, "08P01 at Bind is the statement's error: the session survives");
        yield return Case(new ServerDeadlineException("silent", new NpgsqlException("Exception while reading from stream", new EndOfStreamException())), FailurePhase.Executing, true, ServerErrorKind.Unresponsive, "the library's deadline broke the connection of a hung server");
        yield return Case(new ServerDeadlineException("silent"), FailurePhase.Opening, false, ServerErrorKind.Unresponsive, "a connection to a hung server was abandoned while opening");
        yield return Case(new InvalidOperationException("wrapped by EF", new ServerDeadlineException("silent")), FailurePhase.Executing, false, ServerErrorKind.Unresponsive, "EF's wrapping is looked through");
        yield return Case(Postgres("08P01"), FailurePhase.Executing, true, ServerErrorKind.None, "08P01 at Bind on a standby is the statement's error");
        yield return Case(Fatal("08P01"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "08P01 FATAL ends the session");
        yield return Case(Fatal("XX000"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "any FATAL while executing ends the session");
        yield return Case(new PostgresException("message", "PANIC", "PANIC", "XX000"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "PANIC: the server crashed");
        yield return Case(Postgres("08003"), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "08003 connection does not exist");
        yield return Case(Postgres("53100"), FailurePhase.Executing, false, ServerErrorKind.None, "53100 disk full is the statement's error (Npgsql calls it transient)");
        yield return Case(Postgres("53200"), FailurePhase.Executing, true, ServerErrorKind.None, "53200 out of memory is the statement's error (Npgsql calls it transient)");
        yield return Case(Postgres("53400"), FailurePhase.Executing, false, ServerErrorKind.None, "53400 configuration limit exceeded is the statement's error");
        yield return Case(Postgres("55P03"), FailurePhase.Executing, true, ServerErrorKind.None, "55P03 lock not available is the statement's error (Npgsql calls it transient)");
        yield return Case(Postgres("58000"), FailurePhase.Executing, false, ServerErrorKind.None, "58000 system error with the session alive is the statement's error");
        yield return Case(Postgres("58030"), FailurePhase.Executing, true, ServerErrorKind.None, "58030 I/O error with the session alive is the statement's error");
        yield return Case(Fatal("58030"), FailurePhase.Executing, true, ServerErrorKind.ConnectionLost, "58030 FATAL ends the session");

        // Never failover.
        yield return Case(Postgres("23505"), FailurePhase.Executing, false, ServerErrorKind.None, "unique violation");
        yield return Case(Postgres("42601"), FailurePhase.Executing, false, ServerErrorKind.None, "syntax error");
        yield return Case(Postgres("57014"), FailurePhase.Executing, false, ServerErrorKind.None, "57014 statement timeout or cancel");
        yield return Case(new NpgsqlException("Exception while reading from stream", new TimeoutException()), FailurePhase.Executing, false, ServerErrorKind.None, "the application's command timeout");
        yield return Case(new OperationCanceledException(), FailurePhase.Executing, false, ServerErrorKind.None, "cancellation");
        yield return Case(new InvalidOperationException("unrelated"), FailurePhase.Executing, false, ServerErrorKind.None, "unrelated exception");

        // Through EF's wrapping.
        yield return Case(new DbUpdateException("An error occurred while saving", Postgres("57P01")), FailurePhase.Executing, false, ServerErrorKind.ConnectionLost, "57P01 inside DbUpdateException");
        yield return Case(new InvalidOperationException("likely due to a transient failure", new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused))), FailurePhase.Opening, false, ServerErrorKind.Unreachable, "refused inside EF's transient wrapper");
    }

    [TestCaseSource(nameof(Cases))]
    public void Classifies(Exception exception, object phase, bool onStandby, object expected) // the enums are internal
        => Assert.That(FailoverErrors.Classify(exception, (FailurePhase)phase, onStandby), Is.EqualTo((ServerErrorKind)expected));

    [Test]
    public void A_connection_Npgsql_broke_means_the_session_is_gone_unless_the_server_said_otherwise()
    {
        using var broken = new StateConnection(ConnectionState.Broken);

        Assert.Multiple(() =>
        {
            Assert.That(FailoverErrors.Classify(new NpgsqlException("protocol out of sync"), FailurePhase.Executing, onStandby: true, broken), Is.EqualTo(ServerErrorKind.ConnectionLost));
            Assert.That(FailoverErrors.Classify(Postgres("08P01"), FailurePhase.Executing, onStandby: true, broken), Is.EqualTo(ServerErrorKind.None),
                "the server's ERROR wins: Npgsql 10 breaks its connection after 08P01 although the server kept the session");
            Assert.That(FailoverErrors.Classify(new InvalidCastException("a parameter of the wrong type"), FailurePhase.Executing, onStandby: true, broken), Is.EqualTo(ServerErrorKind.None),
                "an error raised by the client, not by the server or the connection, is never failover");
            Assert.That(FailoverErrors.Classify(new NpgsqlException("The operation has timed out", new TimeoutException()), FailurePhase.Executing, onStandby: true, broken), Is.EqualTo(ServerErrorKind.None),
                "the application's command timeout stays the application's even when Npgsql broke the connection to cancel it");
            Assert.That(FailoverErrors.Classify(Postgres("28P01"), FailurePhase.Opening, onStandby: true, broken), Is.EqualTo(ServerErrorKind.None),
                "while opening, only the listed errors count");
        });
    }

    [Test]
    public void A_connection_closed_after_a_statement_error_is_not_a_lost_session()
    {
        // A reader run with CommandBehavior.CloseConnection closes its connection after any error, the statement's own too.
        using var closed = new NpgsqlConnection("Host=localhost");

        Assert.That(FailoverErrors.Classify(Postgres("08P01"), FailurePhase.Executing, onStandby: true, closed), Is.EqualTo(ServerErrorKind.None));
    }

    private sealed class StateConnection(ConnectionState state) : DbConnection
    {
        [AllowNull]
        public override string ConnectionString { get; set; } = "";

        public override string Database => "";

        public override string DataSource => "";

        public override string ServerVersion => "";

        public override ConnectionState State => state;

        public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

        public override void Close()
        {
        }

        public override void Open() => throw new NotSupportedException();

        protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

        protected override DbCommand CreateDbCommand() => throw new NotSupportedException();
    }

    /// <summary>
    /// Issue 20: a read-your-writes position capture during a promotion failed to open with "No suitable host was found."
    /// (a multi-host data source with no primary yet), which the capture's handler took for a statement error and threw to
    /// the caller instead of reading on the primary.
    /// </summary>
    [Test]
    public void A_statement_of_the_library_s_own_that_could_not_open_its_connection_failed_over()
    {
        var noHost = new NpgsqlException("No suitable host was found.");

        Assert.That(FailoverErrors.Classify(noHost, FailurePhase.Executing, onStandby: false), Is.EqualTo(ServerErrorKind.None), "taken alone as a statement's error");
        Assert.That(FailoverErrors.IsFailoverOfOwnStatement(noHost), Is.True);
        Assert.That(FailoverErrors.IsFailoverOfOwnStatement(new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused))), Is.True);
        Assert.That(FailoverErrors.IsFailoverOfOwnStatement(new OperationCanceledException()), Is.False, "the caller cancelled");
    }

    [Test]
    public void Every_kind_has_a_stable_name()
        => Assert.That(Enum.GetValues<ServerErrorKind>().Select(FailoverErrors.GetName),
            Is.EqualTo(new[] { "none", "unreachable", "connection-lost", "read-only", "recovery-conflict", "session-expired", "unresponsive" }));
}
