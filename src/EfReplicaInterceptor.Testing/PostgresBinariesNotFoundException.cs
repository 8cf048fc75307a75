namespace EfReplicaInterceptor.Testing;

/// <summary>
/// Thrown by <see cref="PostgresBinaries.Locate()"/> when the PostgreSQL server programs
/// (<c>initdb</c>, <c>pg_ctl</c>, <c>postgres</c>, <c>pg_basebackup</c>) cannot be found.
/// The message says where the harness looked and how to install them.
/// </summary>
public sealed class PostgresBinariesNotFoundException : Exception
{
    /// <summary>Creates the exception with the default message.</summary>
    public PostgresBinariesNotFoundException()
        : this(PostgresBinaries.NotFoundMessage([]))
    {
    }

    /// <summary>Creates the exception with the given message.</summary>
    /// <param name="message">What was searched and how to install the programs.</param>
    public PostgresBinariesNotFoundException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the given message and cause.</summary>
    /// <param name="message">What was searched and how to install the programs.</param>
    /// <param name="innerException">The failure that caused this one.</param>
    public PostgresBinariesNotFoundException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
