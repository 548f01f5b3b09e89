// Closed-loop load for streamed chat completions, which wrk cannot time: CONNS workers each send one streamed request
// after another for SECONDS, and the time to the first content chunk (TTFT) and to the end of the stream are recorded
// per request. The first second is warm-up (new connections, this process's own JIT): sent and counted, not timed.
// Prints one line: requests sent, completed, failed, req/s, then TTFT p50/p90/p99 and total p50/p90/p99 in ms.
//   LoadGen URL KEY MODEL CONNS SECONDS
// BENCH_HEADERS (if set): extra request headers, one "Name: value" a line (bench/run.sh routes its Portkey rows with them).
// One connection per worker (thousands work: raise `ulimit -n` first, as bench/run.sh does).
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

if (args.Length != 5)
{
    Console.Error.WriteLine("usage: LoadGen URL KEY MODEL CONNS SECONDS");
    return 2;
}
var (url, key, model) = (args[0], args[1], args[2]);
var conns = int.Parse(args[3], CultureInfo.InvariantCulture);
var seconds = double.Parse(args[4], CultureInfo.InvariantCulture);
var body = Encoding.UTF8.GetBytes(
    $$"""{"model":"{{model}}","stream":true,"messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}""");
var contentMarker = "\"content\""u8.ToArray();
var extraHeaders = (Environment.GetEnvironmentVariable("BENCH_HEADERS") ?? "")
    .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
    .Select(line => line.Split(':', 2, StringSplitOptions.TrimEntries))
    .Where(parts => parts.Length == 2)
    .ToArray();

using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = conns, UseProxy = false })
{
    Timeout = TimeSpan.FromSeconds(30),
};
var timedFrom = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
var deadline = timedFrom + (long)(seconds * Stopwatch.Frequency);
long sent = 0, failed = 0;
var ttft = new List<double>[conns];
var total = new List<double>[conns];

await Task.WhenAll(Enumerable.Range(0, conns).Select(Worker));

var ttftAll = ttft.SelectMany(l => l).Order().ToArray();
var totalAll = total.SelectMany(l => l).Order().ToArray();
Console.WriteLine(string.Join(' ', new object[]
{
    sent, totalAll.Length, failed, (totalAll.Length / seconds).ToString("F1", CultureInfo.InvariantCulture),
    P(ttftAll, 0.50), P(ttftAll, 0.90), P(ttftAll, 0.99), P(totalAll, 0.50), P(totalAll, 0.90), P(totalAll, 0.99),
}));
return 0;

async Task Worker(int w)
{
    ttft[w] = []; total[w] = [];
    var buffer = new byte[16 * 1024];
    while (Stopwatch.GetTimestamp() < deadline)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (key.Length > 0) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        foreach (var header in extraHeaders) request.Headers.TryAddWithoutValidation(header[0], header[1]);
        Interlocked.Increment(ref sent);
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode) { Interlocked.Increment(ref failed); continue; }
            await using var stream = await response.Content.ReadAsStreamAsync();
            double first = -1;
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                if (first < 0 && buffer.AsSpan(0, read).IndexOf(contentMarker) >= 0) first = Ms(start);
            }
            if (first < 0) { Interlocked.Increment(ref failed); continue; }
            if (start < timedFrom) continue;
            ttft[w].Add(first);
            total[w].Add(Ms(start));
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
        {
            Interlocked.Increment(ref failed);
        }
    }
}

static double Ms(long start) => Stopwatch.GetElapsedTime(start).TotalMilliseconds;

static string P(double[] sorted, double q) =>
    sorted.Length == 0 ? "nan" : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))].ToString("F3", CultureInfo.InvariantCulture);
