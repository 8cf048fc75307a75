using System.Buffers;

namespace EfReplicaInterceptor;

/// <summary>
/// Decides whether a PostgreSQL command text is provably a plain read that may run on a hot standby.
/// Anything it cannot prove a plain read is classified for the primary.
/// </summary>
/// <remarks>
/// <para>
/// The text is read once, without allocating, by a lexer that follows PostgreSQL's own (comments, every form of string constant,
/// quoted identifiers), so words inside comments, strings and identifiers change nothing. A text is a read only when every
/// statement in it is one of <c>SELECT</c>, <c>VALUES</c>, <c>TABLE</c>, <c>WITH</c>, <c>SHOW</c>, <c>EXPLAIN</c> of those, or
/// <c>COPY ... TO STDOUT</c>, and contains no <c>INSERT</c>, <c>UPDATE</c>, <c>DELETE</c>, <c>MERGE</c> (data-modifying CTEs at
/// any depth), <c>SELECT ... INTO</c>, row-locking clause, or call of a function that needs the primary: sequence functions,
/// advisory locks, <c>pg_notify</c>, <c>set_config</c>, transaction-id and WAL functions, large-object writers, <c>dblink</c>, ...,
/// and the application's own write functions.
/// </para>
/// <para>
/// Most of EF Core's reads are decided before the lexer runs, by a vectorised screen that accepts a single <c>SELECT</c> whose
/// text holds no deciding word, no call of a listed function and nothing the screen does not read (comments, dollar quotes,
/// batches, ...). It can only accept what the lexer would also classify as a read; anything else goes to the lexer.
/// </para>
/// <para>
/// What the text alone cannot show is not seen: a view or an operator whose function writes, a function the application did not
/// list. <see cref="LoadVolatileFunctionsAsync"/> lists the application's volatile functions so that they can be declared.
/// Plain <c>'...'</c> strings are read with <c>standard_conforming_strings = on</c>, PostgreSQL's default.
/// </para>
/// </remarks>
public sealed partial class SqlClassifier
{
    /// <summary>
    /// Built-in functions that need the primary wherever they appear: they fail on a standby, or they act on state that belongs
    /// to one server or one session (sequences, advisory locks, configuration, backends, slots).
    /// </summary>
    internal static readonly string[] BuiltInWriteFunctions =
    [
        // Sequences.
        "nextval", "setval", "currval", "lastval",

        // Session settings and notifications.
        "set_config", "setseed", "pg_notify",

        // Transaction ids and snapshots of this server.
        "txid_current", "txid_current_if_assigned", "pg_current_xact_id", "pg_current_xact_id_if_assigned", "pg_export_snapshot",

        // WAL positions and WAL control.
        "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_switch_wal", "pg_create_restore_point",
        "pg_walfile_name", "pg_walfile_name_offset", "pg_log_standby_snapshot", "pg_logical_emit_message",
        "pg_current_xlog_location", "pg_current_xlog_insert_location", "pg_current_xlog_flush_location", "pg_switch_xlog",
        "pg_xlogfile_name", "pg_xlogfile_name_offset",
        "pg_backup_start", "pg_backup_stop", "pg_start_backup", "pg_stop_backup",

        // Replication slots.
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot", "pg_replication_slot_advance",

        // Large objects that are created, written, exported or removed.
        "lo_creat", "lo_create", "lo_import", "lo_export", "lo_unlink", "lo_put", "lo_from_bytea", "lo_open", "lowrite",
        "lo_truncate", "lo_truncate64",

        // Backends, configuration files and server files (a pid or a file belongs to one server).
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_log_backend_memory_contexts",
        "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_import_system_collations",

        // Index and visibility-map maintenance.
        "brin_summarize_new_values", "brin_summarize_range", "brin_desummarize_range", "gin_clean_pending_list",
        "pg_truncate_visibility_map",

        // Functions that run SQL given as text, which could be anything.
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",

        "pg_stat_statements_reset",
    ];

    /// <summary>Families of built-in functions that need the primary, by prefix.</summary>
    internal static readonly string[] BuiltInWriteFunctionPrefixes =
    [
        "pg_advisory_", "pg_try_advisory_", "pg_logical_slot_", "pg_replication_origin_", "pg_stat_reset", "dblink", "binary_upgrade_",
    ];

    private readonly FunctionNameSet _calls;
    private readonly FunctionNameSet? _attributeCalls;
    private readonly SearchValues<string>? _attributeNames;
    private readonly ClassificationCache _cache = new();

    /// <summary>Creates a classifier that knows PostgreSQL's built-in functions that need the primary.</summary>
    public SqlClassifier()
        : this([])
    {
    }

    /// <summary>
    /// Creates a classifier that also treats calls to <paramref name="writeFunctions"/> as needing the primary. Names may be
    /// schema-qualified or not and quoted or not (<c>audit.log_access</c>, <c>"Audit"."LogAccess"</c>); they match
    /// case-insensitively, in any schema, called as <c>name(...)</c> or in attribute notation (<c>row.name</c>).
    /// </summary>
    /// <exception cref="ArgumentException">A name is empty or malformed.</exception>
    public SqlClassifier(IEnumerable<string> writeFunctions)
    {
        ArgumentNullException.ThrowIfNull(writeFunctions);
        string[] application = [.. writeFunctions];
        _calls = new FunctionNameSet([.. BuiltInWriteFunctions, .. application], BuiltInWriteFunctionPrefixes);
        var attributeCalls = new FunctionNameSet(application, []);
        _attributeCalls = attributeCalls.IsEmpty ? null : attributeCalls;
        _attributeNames = _attributeCalls is null
            ? null
            : SearchValues.Create([.. application.Select(FunctionNameSet.Normalize).Distinct(StringComparer.Ordinal)], StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A shared classifier with no application-specific write functions.</summary>
    public static SqlClassifier Default { get; } = new();

    /// <summary>Classifies <paramref name="commandText"/> (one or more statements). Never throws for any text; what it cannot read is <see cref="RoutingReason.Unrecognized"/>.</summary>
    public SqlClassification Classify(string commandText)
    {
        ArgumentNullException.ThrowIfNull(commandText);
        return ClassifyText(commandText);
    }

    /// <summary>
    /// Classifies with a bounded cache keyed by the string instance: EF Core reuses the same command text instance for a cached
    /// query, so a repeated text costs a reference comparison.
    /// </summary>
    internal SqlClassification ClassifyCached(string commandText)
    {
        ArgumentNullException.ThrowIfNull(commandText);
        if (_cache.TryGet(commandText, out var classification))
        {
            return classification;
        }

        classification = ClassifyText(commandText);
        _cache.Add(commandText, classification);
        return classification;
    }

    /// <summary>Classifies by the full analysis only, without <see cref="SqlReadScreen"/> in front: what the screen is tested against.</summary>
    internal SqlClassification ClassifyWithoutScreen(string commandText) => SqlStatementAnalyzer.Classify(commandText, _calls, _attributeCalls);

    /// <summary>Whether the screen alone accepts <paramref name="commandText"/> as a plain read.</summary>
    internal bool ScreenAccepts(string commandText) => SqlReadScreen.IsPlainRead(commandText, _calls, _attributeNames);

    private SqlClassification ClassifyText(string commandText) =>
        SqlReadScreen.IsPlainRead(commandText, _calls, _attributeNames)
            ? SqlClassification.PlainRead
            : SqlStatementAnalyzer.Classify(commandText, _calls, _attributeCalls);
}
