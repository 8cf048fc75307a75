namespace EfReplicaInterceptor.Testing; internal static class Placeholder { }
