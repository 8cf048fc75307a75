namespace EfReplicaInterceptor;

/// <summary>
/// Says which tenant the current scope (typically one HTTP request) works for, for example from the request's host name or
/// a claim. Registered by the application, usually as a scoped service; the library asks it once for every tenant DbContext
/// it leases in a scope.
/// </summary>
/// <remarks>
/// The answer selects the servers every command of that DbContext may reach, so derive it from something the application
/// trusts (an authenticated claim, a host name the application serves). Tenant ids are compared ignoring case.
/// </remarks>
public interface IEfReplicaTenantResolver
{
    /// <summary>
    /// The tenant id of the current scope, or <see langword="null"/> when there is none; then leasing a tenant DbContext
    /// throws <see cref="EfReplicaTenantException"/> and no command runs.
    /// </summary>
    string? ResolveTenant();
}
