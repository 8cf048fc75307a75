using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Registers the library's EF-internal services (as EF plugins do, through an options extension): the scoped
/// <see cref="ContextLease"/> that keeps a context's lease state (reset when EF resets the context for its pool), and EF's
/// relational command with the <see cref="ReaderOpening"/> mark, so that EF's primary connection opens only when a command
/// needs the primary.
/// </summary>
internal sealed class EfReplicaOptionsExtension : IDbContextOptionsExtension
{
    private DbContextOptionsExtensionInfo? _info;

    public DbContextOptionsExtensionInfo Info => _info ??= new ExtensionInfo(this);

    public void ApplyServices(IServiceCollection services)
    {
        services.TryAddScoped<ContextLease>();
        services.TryAddEnumerable(ServiceDescriptor.Scoped<IResettableService, ContextLease>(static provider => provider.GetRequiredService<ContextLease>()));
        services.Replace(ServiceDescriptor.Singleton<IRelationalCommandBuilderFactory, RoutedRelationalCommandBuilderFactory>());
    }

    public void Validate(IDbContextOptions options)
    {
    }

    private sealed class ExtensionInfo(IDbContextOptionsExtension extension) : DbContextOptionsExtensionInfo(extension)
    {
        public override bool IsDatabaseProvider => false;

        public override string LogFragment => "EfReplica ";

        public override int GetServiceProviderHashCode() => 0;

        public override bool ShouldUseSameServiceProvider(DbContextOptionsExtensionInfo other) => other is ExtensionInfo;

        public override void PopulateDebugInfo(IDictionary<string, string> debugInfo) => debugInfo["EfReplica"] = "1";
    }
}
