using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// A server's TCP address as an IP address and a port: the address a server says a connection reached it at
/// (<c>inet_server_addr()</c>, <c>inet_server_port()</c>), or the one a WAL receiver says it is connected to
/// (<c>pg_stat_wal_receiver.sender_host</c>, <c>sender_port</c>). IPv4-mapped IPv6 addresses are taken as the IPv4 address.
/// </summary>
internal readonly record struct TcpAddress(IPAddress Address, int Port)
{
    /// <summary>
    /// The address, or null unless <paramref name="host"/> is an IP address in its usual text (as PostgreSQL's
    /// <c>host()</c> writes it: the text must read back the same) and <paramref name="port"/> a port: a host name (which
    /// each host may resolve differently), a unix socket's directory, an unusual spelling or a missing value give none.
    /// </summary>
    public static TcpAddress? Parse(string? host, int? port)
    {
        if (host is null || port is not (> 0 and <= 65535)
            || !IPAddress.TryParse(host, out var address)
            || address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            || !string.Equals(address.ToString(), host, StringComparison.Ordinal))
        {
            return null;
        }

        return new TcpAddress(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, port.Value);
    }

    /// <summary>True for an address of the host's own loopback network (127.0.0.0/8, ::1).</summary>
    public bool IsLoopback => IPAddress.IsLoopback(Address);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Address}:{Port}");
}

/// <summary>
/// A standby's WAL receiver, as the standby itself said in the monitor's probe: the application name it gives its upstream
/// (<see cref="WalReceiverName"/>), the upstream it is connected to (null when not shown: not streaming, a role without
/// <c>pg_read_all_stats</c>, a host name or a unix socket), and whether the probe's own connection reached the standby over
/// loopback.
/// </summary>
/// <remarks>
/// The primary's <c>pg_stat_replication</c> shows the standbys streaming from the primary itself. A standby that streams
/// from another standby (cascading replication) is not there; its upstream is, and may carry the same name (a
/// <c>cluster_name</c> inherited through <c>pg_basebackup</c>, the default <c>walreceiver</c>) while the configured replica
/// downstream of it is behind. So a row is credited only to a replica whose receiver is connected to the very address
/// the primary says the capture's connection reached it at (<see cref="StreamsFrom"/>).
/// </remarks>
internal sealed record WalReceiver(string Name, TcpAddress? Sender, bool ReachedOverLoopback)
{
    /// <summary>
    /// True when this receiver streams from <paramref name="primary"/>, the address (IP and port) the primary said the
    /// capture's connection reached it at: the receiver's sender is that address and, for a loopback address, the monitor
    /// also reached this standby over loopback. False whenever either is unknown.
    /// </summary>
    /// <remarks>
    /// An address names one listening socket only within one network: the receiver dialled its sender from the standby's
    /// host, the capture reached the primary from the application's. Equal IP and port name the same server when both see
    /// one address space: on one host over loopback, the primary, the replica and its upstream each listen on a port of
    /// their own, so two servers never share an address there; across hosts, the primary's own address is where the
    /// standby reaches it. A loopback address is per host: a remote standby whose upstream listens on its own host at the
    /// primary's port number would match a primary the application reaches over loopback, so a loopback sender counts only
    /// when the standby was reached over loopback too (the application, the primary and the standby on one host). What the
    /// check cannot see through: address spaces that overlap between the application's side and the standby's (the same
    /// private address, or a relay on each server's host that makes both look local to the application) where the standby's
    /// upstream has the primary's address and port; deployments like that must not let a standby that cascades from
    /// another carry its upstream's name. A host name, a unix socket, a proxy or NAT between the standby and the primary, a
    /// capture over a unix socket: no match, so no credit (the replay check, as without the rows). The receiver is as the
    /// monitor's latest probe saw it: a standby re-pointed from the primary to another standby with its name is taken for
    /// the primary's until the next probe (a re-pointing is an operator's or HA manager's act, not a fault).
    /// </remarks>
    public bool StreamsFrom(TcpAddress? primary)
        => primary is { } address && Sender is { } sender && sender == address && (!sender.IsLoopback || ReachedOverLoopback);
}
