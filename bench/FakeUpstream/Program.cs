// A fast fake OpenAI upstream for the benchmark: answers /v1/chat/completions with a fixed,
// documented-shape body (or SSE stream) after an optional delay (FAKE_DELAY_MS).
using System.Globalization;
using System.Text;

var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
var app = builder.Build();
var delay = int.Parse(Environment.GetEnvironmentVariable("FAKE_DELAY_MS") ?? "0", CultureInfo.InvariantCulture);

var completion = Encoding.UTF8.GetBytes("""
    {"id":"chatcmpl-bench","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":9,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}
    """);
var chunk = """{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}""";
var stream = Encoding.UTF8.GetBytes(
    string.Concat(Enumerable.Repeat($"data: {chunk}\n\n", 16))
    + """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":16,"total_tokens":35}}""" + "\n\n"
    + "data: [DONE]\n\n");

app.MapPost("/v1/chat/completions", async (HttpContext http) =>
{
    using var reader = new StreamReader(http.Request.Body);
    var body = await reader.ReadToEndAsync();
    if (delay > 0) await Task.Delay(delay);
    var streaming = body.Contains("\"stream\":true", StringComparison.Ordinal);
    http.Response.ContentType = streaming ? "text/event-stream; charset=utf-8" : "application/json";
    await http.Response.Body.WriteAsync(streaming ? stream : completion);
});

app.Run();
