namespace EfReplicaInterceptor.Testing;

/// <summary>Settings of a <see cref="PgBouncer"/> the tests start.</summary>
public sealed class PgBouncerOptions
{
    /// <summary>PgBouncer's default <c>server_login_retry</c>: 15 s, what users run.</summary>
    public static readonly TimeSpan DefaultServerLoginRetry = TimeSpan.FromSeconds(15);

    /// <summary>The pool mode; default <see cref="PgBouncerPoolMode.Session"/>.</summary>
    public PgBouncerPoolMode PoolMode { get; set; } = PgBouncerPoolMode.Session;

    /// <summary>
    /// <c>server_login_retry</c>: how long PgBouncer answers new clients with <c>"server login has been failing, try again later"</c>
    /// after a login to its server failed (the server was down), before it tries again. Whole seconds, at least 1 s; default
    /// <see cref="DefaultServerLoginRetry"/>. Tests may lower it to stay short, and say so.
    /// </summary>
    public TimeSpan ServerLoginRetry { get; set; } = DefaultServerLoginRetry;

    /// <summary>How long the start may take (until PgBouncer forwards a query to its server); default 30 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

    internal PgBouncerOptions Validated()
    {
        if (ServerLoginRetry < TimeSpan.FromSeconds(1) || ServerLoginRetry.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new ArgumentException("PgBouncerOptions.ServerLoginRetry must be a whole number of seconds, at least 1 s.", nameof(ServerLoginRetry));
        }

        if (StartTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("PgBouncerOptions.StartTimeout must be positive.", nameof(StartTimeout));
        }

        if (!Enum.IsDefined(PoolMode))
        {
            throw new ArgumentException("PgBouncerOptions.PoolMode is not a pool mode.", nameof(PoolMode));
        }

        return new PgBouncerOptions { PoolMode = PoolMode, ServerLoginRetry = ServerLoginRetry, StartTimeout = StartTimeout };
    }
}
