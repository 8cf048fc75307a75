using System.Net.Sockets;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>What a failed command on EF's own (primary) connection becomes: a typed outcome, or the caller's error left alone.</summary>
public sealed class WriteFailureTranslatorTests
{
    // The severity the server sends with each: a unique violation is an ERROR (the session lives on), the others end the session.
    private static PostgresException Postgres(string sqlState) => new("message", sqlState == "23505" ? "ERROR" : "FATAL", sqlState == "23505" ? "ERROR" : "FATAL", sqlState);

    private static WriteFailureTranslator Translator(bool shadow = false) => new("orders", shadow, NullLoggerFactory.Instance);

    [Test]
    public void A_refused_connection_is_not_applied_and_keeps_the_server_error_inside()
    {
        var refused = new NpgsqlException("Failed to connect", new SocketException((int)SocketError.ConnectionRefused));

        var failover = Translator().Translate(refused, FailurePhase.Opening, inOpenTransaction: false, isCommit: false, connection: null);

        Assert.That(failover, Is.Not.Null);
        Assert.That(failover!.Outcome, Is.EqualTo(FailoverOutcome.NotApplied));
        Assert.That(failover.InnerException, Is.SameAs(refused));
        Assert.That(failover.Message, Does.Contain("cluster 'orders'").And.Contain("unreachable").And.Contain("safe to retry"));
    }

    [Test]
    public void A_lost_connection_after_a_write_was_sent_has_an_unknown_outcome_found_through_EF_wrapping()
    {
        var lost = Postgres("57P01");

        var failover = Translator().Translate(new DbUpdateException("An error occurred while saving", lost), FailurePhase.Executing, inOpenTransaction: false, isCommit: false, connection: null);

        Assert.That(failover!.Outcome, Is.EqualTo(FailoverOutcome.Unknown));
        Assert.That(failover.SqlState, Is.EqualTo("57P01"));
        Assert.That(failover.Message, Does.Contain("ExecuteIdempotentAsync"));
    }

    [Test]
    public void The_callers_own_errors_and_shadow_mode_are_left_alone()
    {
        Assert.That(Translator().Translate(Postgres("23505"), FailurePhase.Executing, false, false, null), Is.Null, "a unique violation is the caller's");
        Assert.That(Translator().Translate(new OperationCanceledException(), FailurePhase.Executing, false, false, null), Is.Null, "a cancellation is the caller's");
        Assert.That(Translator(shadow: true).Translate(Postgres("57P01"), FailurePhase.Executing, false, false, null), Is.Null, "shadow mode changes nothing");
    }

    [Test]
    public void A_statement_error_of_class_08_is_the_callers_own_and_is_thrown_as_it_is()
    {
        var bind = new PostgresException("bind message supplies 0 parameters, but prepared statement \"\" requires 1", "ERROR", "ERROR", "08P01");

        Assert.That(Translator().Translate(bind, FailurePhase.Executing, inOpenTransaction: false, isCommit: false, connection: null), Is.Null,
            "08P01 at Bind leaves the session alive: no failover exception, no pool cleared");
    }

    [Test]
    public void An_expired_idle_session_was_not_applied_and_is_safe_to_retry()
    {
        var expired = Postgres("57P05");

        var failover = Translator().Translate(expired, FailurePhase.Executing, inOpenTransaction: false, isCommit: true, connection: null);

        Assert.That(failover!.Outcome, Is.EqualTo(FailoverOutcome.NotApplied));
        Assert.That(failover.SqlState, Is.EqualTo("57P05"));
        Assert.That(failover.Message, Does.Contain("session-expired").And.Contain("safe to retry"));
    }

    [Test]
    public void An_exception_that_is_already_typed_is_not_wrapped_again()
    {
        var typed = new EfReplicaFailoverException(FailoverOutcome.Unknown, "already translated", Postgres("57P01"));

        Assert.That(Translator().Translate(typed, FailurePhase.Executing, false, false, null), Is.Null);
    }
}
