using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>Which errors say that Npgsql's loaded types lack one a command names (the integration test <c>PromotedTypeCatalogTests</c> covers the rest).</summary>
public sealed class PrimaryTypeCatalogTests
{
    [Test]
    public void Npgsqls_refusal_of_a_type_it_did_not_load_is_recognised_through_EFs_wrapping()
    {
        var notFound = new NotSupportedException("The data type name 'mood' could not be found in the types that were loaded by Npgsql.") { Source = "Npgsql" };
        var cannotWrite = new InvalidCastException("Writing values of 'Mood' is not supported for parameters having no NpgsqlDbType or DataTypeName.") { Source = "Npgsql" };

        Assert.Multiple(() =>
        {
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(new DbUpdateException("An error occurred while saving", notFound)), Is.True);
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(cannotWrite), Is.True);
        });
    }

    [Test]
    public void The_same_exceptions_raised_elsewhere_and_other_errors_are_not()
    {
        Assert.Multiple(() =>
        {
            // Reading a result comes after the command ran: never "not applied".
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(new InvalidCastException("Reading as 'Mood' is not supported for fields having DataTypeName '-.-'") { Source = "Npgsql" }), Is.False);
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(new NotSupportedException("Npgsql does not support this") { Source = "Npgsql" }), Is.False);
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(new NotSupportedException("The data type name 'mood' could not be found in the types that were loaded by Npgsql.") { Source = "Shop" }), Is.False);
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(new InvalidCastException("Writing values of 'Mood' is not supported")), Is.False);
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(new DbUpdateException("An error occurred while saving", new TimeoutException { Source = "Npgsql" })), Is.False);
        });
    }
}
