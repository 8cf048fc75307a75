namespace EfReplicaInterceptor.AspNetCore;

/// <summary>
/// Endpoint metadata: requests to this endpoint run without a request consistency scope, and their responses never touch
/// the client's token (it is neither read nor written nor dropped). For endpoints that use no DbContext (health checks,
/// long-lived streams, WebSockets), and, in an application with several clusters, for the endpoints of a cluster other than
/// the one the token is for (a request scope and its token follow one cluster: see docs/aspnet-core.md). Put it on a controller or an
/// action, or call <c>DisableEfReplicaConsistency()</c> on an endpoint or a group. Needs routing to run before
/// <c>UseEfReplicaConsistency()</c> (the default with <c>WebApplication</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class DisableEfReplicaConsistencyAttribute : Attribute
{
}
