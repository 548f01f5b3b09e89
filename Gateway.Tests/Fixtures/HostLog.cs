using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Xunit.v3;

[assembly: Gateway.Tests.Fixtures.HostLogInTestOutput]

namespace Gateway.Tests.Fixtures;

/// <summary>
/// Where every test host logs instead of the console: one process-wide buffer of numbered lines. Each test's output
/// receives the lines logged while it ran (<see cref="HostLogInTestOutputAttribute"/>); the runner prints a test's
/// output only when the test fails, so a passing run prints none of it and a failing test shows what the hosts said.
/// </summary>
public static class HostLog
{
    /// <summary>The newest lines kept (older ones are dropped: a test only ever shows its own window).</summary>
    private const int Kept = 20_000;

    private static readonly ConcurrentQueue<(long Number, string Text)> Lines = new();
    private static long _last;

    /// <summary>The number of the last line written so far; a test's window starts here.</summary>
    public static long Position => Interlocked.Read(ref _last);

    public static void Write(string text)
    {
        var number = Interlocked.Increment(ref _last);
        Lines.Enqueue((number, text));
        while (Lines.Count > Kept && Lines.TryDequeue(out _))
        {
        }
    }

    /// <summary>Lines written after <paramref name="position"/> (the last <paramref name="max"/>), and how many there were.</summary>
    public static (IReadOnlyList<string> Lines, int Total) Since(long position, int max)
    {
        var lines = Lines.Where(l => l.Number > position).OrderBy(l => l.Number).Select(l => l.Text).ToList();
        return (lines.Count > max ? lines[^max..] : lines, lines.Count);
    }

    /// <summary>
    /// Replaces a host's log providers (console, debug, event source) with this buffer. The host's own level
    /// settings still decide what is logged (tests run hosts at Warning).
    /// </summary>
    public static void RouteHere(ILoggingBuilder logging, string host)
    {
        logging.ClearProviders();
        logging.AddProvider(new Provider(host));
    }

    private sealed class Provider(string host) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(host, categoryName);

        public void Dispose()
        {
        }
    }

    private sealed class Logger(string host, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var time = TimeProvider.System.GetUtcNow().ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);
            var text = $"{time} [{host}] {logLevel} {category}[{eventId.Id}] {formatter(state, exception)}";
            Write(exception is null ? text : text + Environment.NewLine + exception);
        }
    }
}

/// <summary>
/// Writes the host log lines of a test's run into that test's output (the last 500 of them). Hosts are shared, so
/// the lines of tests running in parallel are there too; each line names its host.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly)]
public sealed class HostLogInTestOutputAttribute : BeforeAfterTestAttribute
{
    private const int Max = 500;

    private static readonly ConcurrentDictionary<string, long> Starts = new();

    public override void Before(MethodInfo methodUnderTest, IXunitTest test) => Starts[test.UniqueID] = HostLog.Position;

    public override void After(MethodInfo methodUnderTest, IXunitTest test)
    {
        if (!Starts.TryRemove(test.UniqueID, out var start) || TestContext.Current.TestOutputHelper is not { } output) return;
        var (lines, total) = HostLog.Since(start, Max);
        if (total == 0) return;
        output.WriteLine(total > lines.Count
            ? $"--- host log while this test ran: the last {lines.Count} of {total} lines ---"
            : $"--- host log while this test ran ({total} lines) ---");
        foreach (var line in lines) output.WriteLine(line);
    }
}
