// A fast fake OpenAI upstream for the benchmark: answers /v1/chat/completions with a fixed body in OpenAI's documented
// shape, after FAKE_DELAY_MS (time to first byte). A streamed answer ("stream":true) is 16 content chunks in the
// documented chat.completion.chunk shape, FAKE_CHUNK_MS apart, then the usage chunk and [DONE].
using System.Globalization;
using System.Text;

// Its content root is its own folder and no file is watched: run from the repository, the default (the working directory, watched
// for appsettings changes) put an inotify watch on all of its folders, and every write of the gateway's usage journal under
// bench/out woke the three fakes' watcher threads: CPU taken from the machine the gateway is measured on.
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.Sources.Clear();
builder.Configuration.AddEnvironmentVariables(prefix: "ASPNETCORE_");
builder.Logging.ClearProviders();
var app = builder.Build();
var delay = Setting("FAKE_DELAY_MS", 0);
var chunkInterval = Setting("FAKE_CHUNK_MS", 0);
// Up to this many ms added to FAKE_DELAY_MS, uniformly at random per request (0: none). With none, answers due within one
// timer tick leave together, so their clients' next requests arrive at the gateway in bursts (bench/RESULTS.md, the tail).
var jitter = Setting("FAKE_JITTER_MS", 0);

var completion = Encoding.UTF8.GetBytes("""
    {"id":"chatcmpl-bench","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":9,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}
    """);
var chunk = Encoding.UTF8.GetBytes("""data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}""" + "\n\n");
var tail = Encoding.UTF8.GetBytes(
    """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}""" + "\n\n"
    + """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":16,"total_tokens":35}}""" + "\n\n"
    + "data: [DONE]\n\n");
var streamAtOnce = Concat(Enumerable.Repeat(chunk, 16).Append(tail));
var streamMarker = "\"stream\":true"u8.ToArray();

app.MapPost("/v1/chat/completions", async (HttpContext http) =>
{
    var body = new MemoryStream();
    await http.Request.Body.CopyToAsync(body);
    if (delay > 0) await Task.Delay(TimeSpan.FromMilliseconds(delay + (jitter > 0 ? Random.Shared.NextDouble() * jitter : 0)));
    if (body.GetBuffer().AsSpan(0, (int)body.Length).IndexOf(streamMarker) < 0)
    {
        http.Response.ContentType = "application/json";
        await http.Response.Body.WriteAsync(completion);
        return;
    }
    http.Response.ContentType = "text/event-stream; charset=utf-8";
    if (chunkInterval == 0)
    {
        await http.Response.Body.WriteAsync(streamAtOnce);
        return;
    }
    for (var i = 0; i < 16; i++)
    {
        if (i > 0) await Task.Delay(chunkInterval);
        await http.Response.Body.WriteAsync(chunk);
        await http.Response.Body.FlushAsync();
    }
    await http.Response.Body.WriteAsync(tail);
});

app.Run();

static int Setting(string name, int fallback) =>
    int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;

static byte[] Concat(IEnumerable<byte[]> parts) => parts.SelectMany(p => p).ToArray();

