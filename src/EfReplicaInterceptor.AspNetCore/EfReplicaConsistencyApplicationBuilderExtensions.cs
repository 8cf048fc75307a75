using EfReplicaInterceptor.AspNetCore;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds the consistency middleware to an ASP.NET Core pipeline.</summary>
public static class EfReplicaConsistencyApplicationBuilderExtensions
{
    /// <summary>
    /// Runs every request that reaches this point inside an ambient read-your-writes scope restored from the client's
    /// consistency token (header <c>EfReplica-Consistency</c>, else cookie <c>efr-consistency</c>), and writes the scope's
    /// new token back before the response starts whenever it changed, for example after the request wrote. The user's next
    /// request then reads only from a replica that has replayed those writes, or from the primary. Place it before the
    /// endpoints that use a DbContext (after static files, authentication and, behind a TLS proxy, forwarded headers).
    /// Options: <c>services.AddEfReplicaConsistency(options =&gt; ...)</c>.
    /// </summary>
    /// <param name="app">The application builder.</param>
    public static IApplicationBuilder UseEfReplicaConsistency(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseMiddleware<EfReplicaConsistencyMiddleware>();
    }
}
