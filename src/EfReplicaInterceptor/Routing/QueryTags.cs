namespace EfReplicaInterceptor.Routing;

/// <summary>
/// The query tags the library writes (<c>.UsePrimary()</c>, <c>.WithMaxStaleness()</c>) and their detection in a command
/// text. EF Core writes each tag as a <c>-- tag</c> line at the very start of the command, so only leading comment lines
/// are read; nothing is allocated.
/// </summary>
internal static class QueryTags
{
    /// <summary>The tag of <c>.UsePrimary()</c>.</summary>
    public const string UsePrimary = "EfReplica:UsePrimary";

    /// <summary>The prefix of the tag of <c>.WithMaxStaleness()</c>, followed by whole milliseconds and <c>ms</c>.</summary>
    public const string MaxStalenessPrefix = "EfReplica:MaxStaleness=";

    public static string MaxStaleness(TimeSpan maxStaleness)
        => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{MaxStalenessPrefix}{(long)Math.Ceiling(maxStaleness.TotalMilliseconds)}ms");

    /// <summary>Reads the library's tags from the leading comment lines of <paramref name="commandText"/>.</summary>
    public static Tags Read(string commandText)
    {
        var text = commandText.AsSpan();
        var usePrimary = false;
        long maxStalenessMs = -1;
        while (text.StartsWith("-- ", StringComparison.Ordinal))
        {
            var end = text.IndexOf('\n');
            var line = (end < 0 ? text : text[..end])[3..].TrimEnd('\r');
            if (line.SequenceEqual(UsePrimary))
            {
                usePrimary = true;
            }
            else if (line.StartsWith(MaxStalenessPrefix, StringComparison.Ordinal) && line.EndsWith("ms", StringComparison.Ordinal)
                     && long.TryParse(line[MaxStalenessPrefix.Length..^2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms))
            {
                // Several budgets on one query: the strictest wins.
                maxStalenessMs = maxStalenessMs < 0 ? ms : Math.Min(maxStalenessMs, ms);
            }

            if (end < 0)
            {
                break;
            }

            text = text[(end + 1)..];
        }

        return new Tags(usePrimary, maxStalenessMs < 0 ? null : TimeSpan.FromMilliseconds(maxStalenessMs));
    }

    internal readonly record struct Tags(bool UsePrimary, TimeSpan? MaxStaleness);
}
