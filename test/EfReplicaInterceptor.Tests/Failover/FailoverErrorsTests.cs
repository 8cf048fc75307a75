using System.Net.Sockets;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>The exact list of errors treated as failover, and those that never are.</summary>
public sealed class FailoverErrorsTests
{
    private static PostgresException Postgres(string sqlState) => new("message", "ERROR", "ERROR", sqlState);

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
}
