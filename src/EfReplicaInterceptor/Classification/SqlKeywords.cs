using System.Runtime.CompilerServices;

namespace EfReplicaInterceptor;

/// <summary>The keywords classification looks at: the words that start a statement, and the few that matter inside a read.</summary>
internal enum SqlKeyword : byte
{
    /// <summary>Not one of the keywords below (maybe another keyword, maybe a name).</summary>
    None = 0,

    // Reads.
    Select,
    Values,
    Table,
    With,
    Show,
    Explain,
    Copy,

    // Writes: DML, DDL, maintenance.
    Insert,
    Update,
    Delete,
    Merge,
    Create,
    Alter,
    Drop,
    Grant,
    Revoke,
    Comment,
    Security,
    Truncate,
    Import,
    Reassign,
    Call,
    Do,
    Vacuum,
    Analyze,
    Reindex,
    Cluster,
    Refresh,
    Checkpoint,

    // Locks.
    Lock,

    // Session state and transaction control.
    Set,
    Reset,
    Begin,
    Start,
    Commit,
    End,
    Rollback,
    Abort,
    Savepoint,
    Release,
    Prepare,
    Execute,
    Deallocate,
    Listen,
    Unlisten,
    Notify,
    Discard,
    Load,
    Declare,
    Fetch,
    Move,
    Close,

    // Inside statements.
    As,
    Into,
    For,
    Share,
    No,
    Key,
    To,
    From,
    Stdout,
    Binary,
    Verbose,
}

/// <summary>Recognises <see cref="SqlKeyword"/>s in unquoted identifiers, case-insensitively as PostgreSQL does (ASCII letters only), without allocating.</summary>
internal static class SqlKeywords
{
    /// <summary>The keyword <paramref name="word"/> (an unquoted identifier) spells, or <see cref="SqlKeyword.None"/>.</summary>
    public static SqlKeyword Lookup(ReadOnlySpan<char> word)
    {
        if (word.Length is < 2 or > 10)
        {
            return SqlKeyword.None;
        }

        switch (word.Length)
        {
            case 2:
                return (Lower(word[0]), Lower(word[1])) switch
                {
                    ('d', 'o') => SqlKeyword.Do,
                    ('n', 'o') => SqlKeyword.No,
                    ('t', 'o') => SqlKeyword.To,
                    _ => SqlKeyword.None,
                };
            case 3:
                return Lower(word[0]) switch
                {
                    'e' when Is(word, "end") => SqlKeyword.End,
                    'f' when Is(word, "for") => SqlKeyword.For,
                    'k' when Is(word, "key") => SqlKeyword.Key,
                    's' when Is(word, "set") => SqlKeyword.Set,
                    _ => SqlKeyword.None,
                };
            case 4:
                return Lower(word[0]) switch
                {
                    'c' when Is(word, "call") => SqlKeyword.Call,
                    'c' when Is(word, "copy") => SqlKeyword.Copy,
                    'd' when Is(word, "drop") => SqlKeyword.Drop,
                    'f' when Is(word, "from") => SqlKeyword.From,
                    'i' when Is(word, "into") => SqlKeyword.Into,
                    'l' when Is(word, "load") => SqlKeyword.Load,
                    'l' when Is(word, "lock") => SqlKeyword.Lock,
                    'm' when Is(word, "move") => SqlKeyword.Move,
                    's' when Is(word, "show") => SqlKeyword.Show,
                    'w' when Is(word, "with") => SqlKeyword.With,
                    _ => SqlKeyword.None,
                };
            case 5:
                return Lower(word[0]) switch
                {
                    'a' when Is(word, "abort") => SqlKeyword.Abort,
                    'a' when Is(word, "alter") => SqlKeyword.Alter,
                    'b' when Is(word, "begin") => SqlKeyword.Begin,
                    'c' when Is(word, "close") => SqlKeyword.Close,
                    'f' when Is(word, "fetch") => SqlKeyword.Fetch,
                    'g' when Is(word, "grant") => SqlKeyword.Grant,
                    'm' when Is(word, "merge") => SqlKeyword.Merge,
                    'r' when Is(word, "reset") => SqlKeyword.Reset,
                    's' when Is(word, "share") => SqlKeyword.Share,
                    's' when Is(word, "start") => SqlKeyword.Start,
                    't' when Is(word, "table") => SqlKeyword.Table,
                    _ => SqlKeyword.None,
                };
            case 6:
                return Lower(word[0]) switch
                {
                    'b' when Is(word, "binary") => SqlKeyword.Binary,
                    'c' when Is(word, "commit") => SqlKeyword.Commit,
                    'c' when Is(word, "create") => SqlKeyword.Create,
                    'd' when Is(word, "delete") => SqlKeyword.Delete,
                    'i' when Is(word, "import") => SqlKeyword.Import,
                    'i' when Is(word, "insert") => SqlKeyword.Insert,
                    'l' when Is(word, "listen") => SqlKeyword.Listen,
                    'n' when Is(word, "notify") => SqlKeyword.Notify,
                    'r' when Is(word, "revoke") => SqlKeyword.Revoke,
                    's' when Is(word, "select") => SqlKeyword.Select,
                    's' when Is(word, "stdout") => SqlKeyword.Stdout,
                    'u' when Is(word, "update") => SqlKeyword.Update,
                    'v' when Is(word, "vacuum") => SqlKeyword.Vacuum,
                    'v' when Is(word, "values") => SqlKeyword.Values,
                    _ => SqlKeyword.None,
                };
            case 7:
                return Lower(word[0]) switch
                {
                    'a' when Is(word, "analyze") || Is(word, "analyse") => SqlKeyword.Analyze,
                    'c' when Is(word, "cluster") => SqlKeyword.Cluster,
                    'c' when Is(word, "comment") => SqlKeyword.Comment,
                    'd' when Is(word, "declare") => SqlKeyword.Declare,
                    'd' when Is(word, "discard") => SqlKeyword.Discard,
                    'e' when Is(word, "execute") => SqlKeyword.Execute,
                    'e' when Is(word, "explain") => SqlKeyword.Explain,
                    'p' when Is(word, "prepare") => SqlKeyword.Prepare,
                    'r' when Is(word, "refresh") => SqlKeyword.Refresh,
                    'r' when Is(word, "reindex") => SqlKeyword.Reindex,
                    'r' when Is(word, "release") => SqlKeyword.Release,
                    'v' when Is(word, "verbose") => SqlKeyword.Verbose,
                    _ => SqlKeyword.None,
                };
            case 8:
                return Lower(word[0]) switch
                {
                    'r' when Is(word, "reassign") => SqlKeyword.Reassign,
                    'r' when Is(word, "rollback") => SqlKeyword.Rollback,
                    's' when Is(word, "security") => SqlKeyword.Security,
                    't' when Is(word, "truncate") => SqlKeyword.Truncate,
                    'u' when Is(word, "unlisten") => SqlKeyword.Unlisten,
                    _ => SqlKeyword.None,
                };
            case 9:
                return Is(word, "savepoint") ? SqlKeyword.Savepoint : SqlKeyword.None;
            default:
                return Lower(word[0]) switch
                {
                    'c' when Is(word, "checkpoint") => SqlKeyword.Checkpoint,
                    'd' when Is(word, "deallocate") => SqlKeyword.Deallocate,
                    _ => SqlKeyword.None,
                };
        }
    }

    /// <summary>
    /// The keywords that matter inside a read (<c>INSERT UPDATE DELETE MERGE INTO FOR SHARE NO KEY AS</c>); cheaper than
    /// <see cref="Lookup"/> because most identifiers of a query are rejected by their length.
    /// </summary>
    public static SqlKeyword LookupInRead(ReadOnlySpan<char> word)
    {
        switch (word.Length)
        {
            case 2:
                return (Lower(word[0]), Lower(word[1])) switch
                {
                    ('a', 's') => SqlKeyword.As,
                    ('n', 'o') => SqlKeyword.No,
                    _ => SqlKeyword.None,
                };
            case 3:
                return Lower(word[0]) switch
                {
                    'f' when Is(word, "for") => SqlKeyword.For,
                    'k' when Is(word, "key") => SqlKeyword.Key,
                    _ => SqlKeyword.None,
                };
            case 4:
                return Is(word, "into") ? SqlKeyword.Into : SqlKeyword.None;
            case 5:
                return Lower(word[0]) switch
                {
                    'm' when Is(word, "merge") => SqlKeyword.Merge,
                    's' when Is(word, "share") => SqlKeyword.Share,
                    _ => SqlKeyword.None,
                };
            case 6:
                return Lower(word[0]) switch
                {
                    'd' when Is(word, "delete") => SqlKeyword.Delete,
                    'i' when Is(word, "insert") => SqlKeyword.Insert,
                    'u' when Is(word, "update") => SqlKeyword.Update,
                    _ => SqlKeyword.None,
                };
            default:
                return SqlKeyword.None;
        }
    }

    /// <summary>
    /// Per length 2 to 6, a bit per first letter ('a' = bit 0) of the keywords <see cref="LookupInRead"/> knows: <c>as no</c>,
    /// <c>for key</c>, <c>into</c>, <c>merge share</c>, <c>delete insert update</c>.
    /// </summary>
    private static ReadOnlySpan<uint> ReadKeywordInitials =>
    [
        0,
        0,
        (1u << ('a' - 'a')) | (1u << ('n' - 'a')),
        (1u << ('f' - 'a')) | (1u << ('k' - 'a')),
        1u << ('i' - 'a'),
        (1u << ('m' - 'a')) | (1u << ('s' - 'a')),
        (1u << ('d' - 'a')) | (1u << ('i' - 'a')) | (1u << ('u' - 'a')),
    ];

    /// <summary>
    /// A cheap filter in front of <see cref="LookupInRead"/>: false for every word whose length and first letter no keyword of
    /// it has (nearly every word of a query: SELECT, FROM, aliases, ...). Never false for one of its keywords.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool MayBeReadKeyword(ReadOnlySpan<char> word)
    {
        var length = (uint)word.Length;
        var letter = (uint)((word[0] | 0x20) - 'a');
        return length - 2 <= 4 && letter < 26 && ((ReadKeywordInitials[(int)length] >> (int)letter) & 1) != 0;
    }

    /// <summary>ASCII lower case; every other character unchanged (PostgreSQL folds only ASCII letters of unquoted identifiers).</summary>
    public static char Lower(char c) => (uint)(c - 'A') <= 'Z' - 'A' ? (char)(c | 0x20) : c;

    /// <summary>Whether <paramref name="word"/> equals <paramref name="lower"/> (lower-case ASCII) ignoring ASCII case.</summary>
    public static bool Is(ReadOnlySpan<char> word, string lower)
    {
        if (word.Length != lower.Length)
        {
            return false;
        }

        for (var i = 0; i < word.Length; i++)
        {
            if (Lower(word[i]) != lower[i])
            {
                return false;
            }
        }

        return true;
    }
}
