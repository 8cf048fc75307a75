using EfReplicaInterceptor.AspNetCore;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Endpoint conventions of the consistency middleware.</summary>
public static class EfReplicaConsistencyEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Requests to these endpoints run without a request consistency scope and leave the client's token alone (see
    /// <see cref="DisableEfReplicaConsistencyAttribute"/>).
    /// </summary>
    /// <typeparam name="TBuilder">The endpoint convention builder (an endpoint, a route group).</typeparam>
    /// <param name="builder">The endpoints.</param>
    public static TBuilder DisableEfReplicaConsistency<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.WithMetadata(new DisableEfReplicaConsistencyAttribute());
        return builder;
    }
}
