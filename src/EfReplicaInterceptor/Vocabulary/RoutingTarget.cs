namespace EfReplicaInterceptor;

/// <summary>Where a command is sent.</summary>
public enum RoutingTarget
{
    /// <summary>The primary (read-write) server. The safe default.</summary>
    Primary = 0,

    /// <summary>A read replica (hot standby).</summary>
    Replica = 1,
}
