using EfReplicaInterceptor.AspNetCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the options of <c>app.UseEfReplicaConsistency()</c>.</summary>
public static class EfReplicaConsistencyServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="EfReplicaConsistencyOptions"/> (cookie, header, what a bad token does), validated when the host
    /// starts. Optional: <c>app.UseEfReplicaConsistency()</c> alone uses the defaults.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Changes the options. Default: none (the defaults).</param>
    public static IServiceCollection AddEfReplicaConsistency(this IServiceCollection services, Action<EfReplicaConsistencyOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<EfReplicaConsistencyOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EfReplicaConsistencyOptions>, EfReplicaConsistencyOptionsValidator>());
        return services;
    }
}
