using EfReplicaInterceptor.Interception;
using EfReplicaInterceptor.Routing;
using EfReplicaInterceptor.Tests.Clusters;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace EfReplicaInterceptor.Tests.Routing;

/// <summary>
/// Where a context's lease state is kept: in the context's own EF service scope when it has the library's EF services, beside
/// it in a table when it has the interceptors alone; reset when the pool takes the context back either way (no server needed:
/// nothing connects).
/// </summary>
public sealed class LeaseStatesTests
{
    private const string NoServer = "Host=127.0.0.1;Port=1;Database=none;Username=nobody";

    [Test]
    public void A_context_with_the_library_s_services_keeps_its_state_in_its_own_scope()
    {
        var states = new LeaseStates();
        using var context = new PlainContext(Options(withServices: true));

        var state = states.Get(context);

        Assert.That(ContextLease.Of(context)?.Find(states), Is.SameAs(state), "kept in the context's scope, not in the table");
        Assert.That(states.Find(context), Is.SameAs(state));
        Assert.That(states.Get(context), Is.SameAs(state));
    }

    [Test]
    public void A_context_with_the_interceptors_alone_keeps_its_state_beside_it()
    {
        var states = new LeaseStates();
        using var context = new PlainContext(Options(withServices: false));

        Assert.That(states.Find(context), Is.Null, "nothing before the first use");
        var state = states.Get(context);

        Assert.That(ContextLease.Of(context), Is.Null);
        Assert.That(states.Find(context), Is.SameAs(state));
        Assert.That(states.Get(context), Is.SameAs(state));
    }

    [Test]
    public void A_context_the_pool_takes_back_starts_its_next_lease_clean_and_its_state_is_reset_at_once([Values] bool withServices)
    {
        var states = new LeaseStates();
        var factory = new PooledDbContextFactory<PlainContext>(Options(withServices), poolSize: 1);
        LeaseState state;
        using (var first = factory.CreateDbContext())
        {
            state = states.Get(first);
            state.MarkWrite(ambient: null, timestamp: 10, inTransaction: false);
            state.PinSession();
        }

        // With the library's services EF resets the state when it takes the context back; without them, the next lease does.
        Assert.That(state.Scope.IsActive, Is.EqualTo(!withServices));

        using var second = factory.CreateDbContext();
        var next = states.Get(second);
        Assert.That(next.Scope.IsActive || next.SessionPinned || next.WriteInFlight, Is.False, "nothing of the first lease is left");
    }

    [Test]
    public void A_second_set_of_interceptors_on_the_same_context_keeps_a_state_of_its_own_reset_with_the_context()
    {
        var first = new LeaseStates();
        var second = new LeaseStates();
        var factory = new PooledDbContextFactory<PlainContext>(Options(withServices: true), poolSize: 1);
        LeaseState theirs;
        using (var context = factory.CreateDbContext())
        {
            var ours = first.Get(context);
            theirs = second.Get(context);
            theirs.PinSession();

            Assert.That(theirs, Is.Not.SameAs(ours));
            Assert.That(second.Find(context), Is.SameAs(theirs));
        }

        Assert.That(theirs.SessionPinned, Is.False, "reset when the pool took the context back");
    }

    [Test]
    public void A_disposed_context_s_state_was_reset_and_looking_for_it_does_not_throw()
    {
        var states = new LeaseStates();
        var context = new PlainContext(Options(withServices: true));
        var state = states.Get(context);
        state.PinSession();

        context.Dispose();

        Assert.That(state.SessionPinned, Is.False, "reset when the context's scope ended");
        Assert.That(states.Find(context), Is.Null);
    }

    private static DbContextOptions<PlainContext> Options(bool withServices)
    {
        var builder = new DbContextOptionsBuilder<PlainContext>().UseNpgsql(NoServer);
        if (withServices)
        {
            ((IDbContextOptionsBuilderInfrastructure)builder).AddOrUpdateExtension(new EfReplicaOptionsExtension());
        }

        return builder.Options;
    }
}
