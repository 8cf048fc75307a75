namespace EfReplicaInterceptor;

/// <summary>
/// Decides whether a PostgreSQL command text is provably a plain read that may run on a hot standby.
/// Anything it cannot prove a plain read is classified for the primary.
/// </summary>
/// <remarks>INTERIM: a deliberately conservative placeholder until the full lexer-based classifier lands.</remarks>
public sealed class SqlClassifier
{
    private readonly string[] _writeFunctions;

    /// <summary>Creates a classifier that knows PostgreSQL's built-in functions that need the primary.</summary>
    public SqlClassifier()
        : this([])
    {
    }

    /// <summary>Creates a classifier that also treats calls to <paramref name="writeFunctions"/> (names, schema-qualified or not) as writes.</summary>
    public SqlClassifier(IEnumerable<string> writeFunctions)
    {
        ArgumentNullException.ThrowIfNull(writeFunctions);
        _writeFunctions = [.. writeFunctions];
    }

    /// <summary>A shared classifier with no application-specific write functions.</summary>
    public static SqlClassifier Default { get; } = new();

    /// <summary>Classifies <paramref name="commandText"/> (one or more statements).</summary>
    public SqlClassification Classify(string commandText)
    {
        ArgumentNullException.ThrowIfNull(commandText);
        var text = commandText.AsSpan();
        while (true)
        {
            text = text.TrimStart();
            if (text.StartsWith("--", StringComparison.Ordinal))
            {
                var end = text.IndexOf('\n');
                text = end < 0 ? [] : text[(end + 1)..];
                continue;
            }

            break;
        }

        if (!text.StartsWith("SELECT ", StringComparison.OrdinalIgnoreCase))
        {
            return SqlClassification.NeedsPrimary(RoutingReason.Unrecognized);
        }

        foreach (var bad in (ReadOnlySpan<string>)[" FOR ", "NEXTVAL", "SETVAL", "ADVISORY", "INSERT", "UPDATE", "DELETE", " INTO ", ";", "NOTIFY", "$$"])
        {
            if (text.Contains(bad, StringComparison.OrdinalIgnoreCase))
            {
                return SqlClassification.NeedsPrimary(RoutingReason.Unrecognized);
            }
        }

        foreach (var function in _writeFunctions)
        {
            if (text.Contains(function, StringComparison.OrdinalIgnoreCase))
            {
                return SqlClassification.NeedsPrimary(RoutingReason.WriteFunction);
            }
        }

        return SqlClassification.PlainRead;
    }

    /// <summary>Classifies with a cache keyed by the string instance: EF Core reuses its command texts.</summary>
    internal SqlClassification ClassifyCached(string commandText) => Classify(commandText);
}
