namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The application name a standby's WAL receiver gives the primary (what the primary shows for it in
/// <c>pg_stat_replication.application_name</c>), as the standby itself says it: from its <c>pg_stat_wal_receiver.conninfo</c>
/// and its <c>cluster_name</c>. Null whenever it cannot be told exactly; a wrong name would credit one standby with another's
/// replay, so every doubt gives no name (and the standby simply gets no replay from the primary's view).
/// </summary>
/// <remarks>
/// What PostgreSQL 15 shows (verified on the servers): the WAL receiver connects with the options of
/// <c>primary_conninfo</c> and always adds <c>fallback_application_name</c> (its <c>cluster_name</c>, else
/// <c>walreceiver</c>); the primary sees <c>application_name</c> when it is set, else that fallback. <c>conninfo</c> lists the
/// options in libpq's fixed order (<c>... options application_name fallback_application_name ...</c>) as
/// <c>key=value</c> pairs separated by single spaces, values unquoted: a value may hold spaces and even <c>key=value</c>
/// text (<c>options=-c work_mem=64MB</c>). So the fallback is not parsed but known (<c>cluster_name</c> is a setting anyone
/// can read, and it cannot change while the server runs), and the text is accepted only when it shows the fallback exactly
/// once, at a pair's start, and nothing before it that could hide an <c>application_name</c> pair: no <c>options</c> pair
/// (the one option whose values hold <c>-c name=value</c> text), at most one <c>application_name=</c> at a pair's start.
/// The one case the text cannot tell is an earlier value (a role name, a passfile path) that itself ends in
/// <c> application_name=...</c>; no name is made of such text by accident. The server keeps at most 63 bytes of an
/// application name and replaces characters outside printable ASCII: a longer name, or one with such characters, is not
/// compared (it would not be the name the primary shows).
/// </remarks>
internal static class WalReceiverName
{
    private const string DefaultName = "walreceiver";
    private const string Fallback = "fallback_application_name=";
    private const string ApplicationName = "application_name=";
    private const int MaxNameLength = 63; // NAMEDATALEN - 1

    /// <summary>The name, or null when <paramref name="connectionInfo"/> does not tell it exactly.</summary>
    public static string? FromConnectionInfo(string? connectionInfo, string? clusterName)
    {
        if (string.IsNullOrEmpty(connectionInfo))
        {
            return null;
        }

        var fallback = string.IsNullOrEmpty(clusterName) ? DefaultName : clusterName;
        var fallbackPair = " " + Fallback + fallback;
        var at = connectionInfo.IndexOf(fallbackPair, StringComparison.Ordinal);
        if (at < 0
            || connectionInfo.IndexOf(" " + Fallback, at + 1, StringComparison.Ordinal) >= 0
            || (at + fallbackPair.Length < connectionInfo.Length && connectionInfo[at + fallbackPair.Length] != ' '))
        {
            return null; // the fallback pair is missing, repeated, or its value is not the one known: cannot tell where values end
        }

        var before = connectionInfo.AsSpan(0, at);
        if (before.StartsWith("options=", StringComparison.Ordinal) || before.Contains(" options=", StringComparison.Ordinal))
        {
            return null; // options values hold "-c name=value" text: an application_name= inside one cannot be told from a pair
        }

        var first = PairStart(before, ApplicationName, 0);
        if (first < 0)
        {
            return Checked(fallback);
        }

        if (PairStart(before, ApplicationName, first + 1) >= 0)
        {
            return null; // two: one is inside another value
        }

        return Checked(before[(first + ApplicationName.Length)..].ToString());
    }

    /// <summary>Where <paramref name="key"/> starts a pair (at the start or after a space) at or after <paramref name="from"/>; -1 when nowhere.</summary>
    private static int PairStart(ReadOnlySpan<char> text, string key, int from)
    {
        for (var i = from; i <= text.Length - key.Length; i++)
        {
            if ((i == 0 || text[i - 1] == ' ') && text[i..].StartsWith(key, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The name when the primary shows it unchanged: 1 to 63 characters of printable ASCII.</summary>
    private static string? Checked(string name)
    {
        if (name.Length is 0 or > MaxNameLength)
        {
            return null;
        }

        foreach (var c in name)
        {
            if (c is < ' ' or > '~')
            {
                return null;
            }
        }

        return name;
    }
}
