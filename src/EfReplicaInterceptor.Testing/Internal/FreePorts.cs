using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// Hands out loopback ports the operating system reports free, never the same one twice within
/// this process while it is in use. Another process can still take a port between the check and
/// the server's bind; callers retry the start on "Address already in use".
/// </summary>
internal static class FreePorts
{
    private static readonly ConcurrentDictionary<int, byte> InUse = new();

    public static int Reserve()
    {
        for (var attempt = 0; ; attempt++)
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            if (InUse.TryAdd(port, 0) || attempt > 50)
            {
                return port;
            }
        }
    }

    public static void Release(int port) => InUse.TryRemove(port, out _);
}
