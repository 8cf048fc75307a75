namespace EfReplicaInterceptor.Demo;

/// <summary>
/// The demo's console output. The workload writes progress dots on a line while the library's log events arrive on other
/// threads; every write goes through one lock, and a whole line always starts on a fresh line.
/// </summary>
internal static class DemoConsole
{
    private static readonly Lock Gate = new();
    private static bool _midLine;

    public static void Line(string text = "")
    {
        lock (Gate)
        {
            if (_midLine)
            {
                Console.WriteLine();
                _midLine = false;
            }

            Console.WriteLine(text);
        }
    }

    /// <summary>Ends the line that <see cref="Write"/> started, if any.</summary>
    public static void EndLine()
    {
        lock (Gate)
        {
            if (_midLine)
            {
                Console.WriteLine();
                _midLine = false;
            }
        }
    }

    /// <summary>Writes <paramref name="text"/> without ending the line (indented when it starts one).</summary>
    public static void Write(string text)
    {
        lock (Gate)
        {
            Console.Write(_midLine ? text : "      " + text.TrimStart());
            _midLine = true;
        }
    }
}
