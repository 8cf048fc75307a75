namespace EfReplicaInterceptor.Routing;

/// <summary>The query tag written by <c>.UsePrimary()</c>, and its detection in a command text.</summary>
internal static class PrimaryTag
{
    /// <summary>The tag text. EF Core writes it as a <c>-- EfReplica:UsePrimary</c> line at the start of the command.</summary>
    public const string Text = "EfReplica:UsePrimary";

    /// <summary>True when one of the leading <c>--</c> comment lines of <paramref name="commandText"/> is the tag.</summary>
    public static bool IsTagged(string commandText)
    {
        var text = commandText.AsSpan();
        while (text.StartsWith("-- ", StringComparison.Ordinal))
        {
            var end = text.IndexOf('\n');
            var line = (end < 0 ? text : text[..end])[3..].TrimEnd('\r');
            if (line.SequenceEqual(Text))
            {
                return true;
            }

            if (end < 0)
            {
                return false;
            }

            text = text[(end + 1)..];
        }

        return false;
    }
}
