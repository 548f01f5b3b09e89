using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Web;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Mock;

/// <summary>
/// The offline provider: a deterministic answer built from the prompt, with usage counted by the
/// tokenizer as a real provider would report it. Latency is set on the provider's base URL:
/// <c>mock://local?latency_ms=200&amp;chunk_delay_ms=20</c> (time to the first token, and between chunks).
/// </summary>
public sealed class MockChatProvider(TokenCounter tokens, TimeProvider time) : IChatProvider, IEmbeddingProvider
{
    public string Protocol => "mock";

    private TimeProvider Time => time;

    public async Task<UpstreamResult<UpstreamCompletion>> CompleteAsync(UpstreamCall call, CancellationToken ct)
    {
        var settings = MockSettings.From(call.Route.Provider.BaseUrl);
        await Delay(settings.LatencyMs, ct);
        var answer = Answer(call);
        var usage = Usage(call, answer);
        var completion = new ChatCompletion(
            Id(call), "chat.completion", time.GetUtcNow().ToUnixTimeSeconds(), call.Route.UpstreamModel,
            [new ChatChoice(0, new AssistantMessage("assistant", answer, null), null, "stop")],
            ToWire(usage), "fp_mock");
        var body = JsonSerializer.SerializeToUtf8Bytes(completion, GatewayJsonContext.Wire.ChatCompletion);
        return new UpstreamCompletion(body, usage, call.Route.UpstreamModel);
    }

    /// <summary>Deterministic 8-dimensional unit vectors derived from each input's SHA-256.</summary>
    public async Task<UpstreamResult<UpstreamCompletion>> EmbedAsync(EmbeddingCall call, CancellationToken ct)
    {
        await Delay(MockSettings.From(call.Route.Provider.BaseUrl).LatencyMs, ct);
        var input = call.Request.Input!.Value;
        var inputs = call.Request.Texts()
            ?? (input.EnumerateArray().All(e => e.ValueKind == System.Text.Json.JsonValueKind.Number)
                ? [input.GetRawText()] // one token array
                : [.. input.EnumerateArray().Select(e => e.GetRawText())]);
        var vectors = inputs.Select(Vector).ToList();
        var promptTokens = call.Request.Texts() is { } texts ? texts.Sum(tokens.Count) : inputs.Count;
        return new UpstreamCompletion(EmbeddingLists.Build(call.Route.UpstreamModel, vectors, promptTokens, call.Request.EncodingFormat),
            new TokenUsage(promptTokens, 0, 0), call.Route.UpstreamModel);
    }

    private static float[] Vector(string text)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text));
        var vector = Enumerable.Range(0, 8).Select(i => BitConverter.ToInt32(hash, i * 4) / (float)int.MaxValue).ToArray();
        var length = MathF.Sqrt(vector.Sum(v => v * v));
        return [.. vector.Select(v => v / length)];
    }

    public Task<UpstreamResult<UpstreamStream>> OpenStreamAsync(UpstreamCall call, CancellationToken ct) =>
        Task.FromResult<UpstreamResult<UpstreamStream>>(new MockStream(this, call));

    /// <summary>Nothing to reach: the mock answers offline, whatever the base URL names.</summary>
    public Task<UpstreamResult<ModelListing>> ListModelsAsync(Catalog.ProviderInfo provider, TimeSpan timeout, CancellationToken ct) =>
        Task.FromResult<UpstreamResult<ModelListing>>(new ModelListing([]));

    /// <summary>The same prompt always gets the same answer.</summary>
    internal static string Answer(UpstreamCall call)
    {
        var last = call.Request.Messages!.LastOrDefault(m => m.Role == "user")?.Text() ?? "";
        var echo = last.Length > 80 ? last[..80] + "…" : last;
        return $"This is the offline mock model. You said: \"{echo}\". Configure a real provider to get real answers.";
    }

    private TokenUsage Usage(UpstreamCall call, string answer) =>
        new(tokens.CountPrompt(call.Request.Messages!), tokens.Count(answer), 0);

    private static ChatUsage ToWire(TokenUsage u) =>
        new(u.PromptTokens, u.CompletionTokens, u.PromptTokens + u.CompletionTokens, new PromptTokensDetails(u.CachedTokens));

    private static string Id(UpstreamCall call) => "chatcmpl-mock-" + call.RequestId.ToString("N", CultureInfo.InvariantCulture);

    private Task Delay(int ms, CancellationToken ct) => ms > 0 ? Task.Delay(TimeSpan.FromMilliseconds(ms), time, ct) : Task.CompletedTask;

    private sealed class MockStream(MockChatProvider owner, UpstreamCall call) : UpstreamStream
    {
        public override async IAsyncEnumerable<StreamChunk> ReadChunksAsync([EnumeratorCancellation] CancellationToken ct)
        {
            var settings = MockSettings.From(call.Route.Provider.BaseUrl);
            var chunks = new ChunkWriter(Id(call), owner.Time.GetUtcNow().ToUnixTimeSeconds(), call.Route.UpstreamModel);
            ServedModel = call.Route.UpstreamModel;

            await owner.Delay(settings.LatencyMs, ct);
            yield return chunks.Role();
            var answer = Answer(call);
            var words = answer.Split(' ');
            for (var i = 0; i < words.Length; i++)
            {
                if (i > 0) await owner.Delay(settings.ChunkDelayMs, ct);
                var piece = i == 0 ? words[i] : " " + words[i];
                Text.Append(piece);
                yield return chunks.Text(piece);
            }
            yield return chunks.Finish("stop");

            var usage = owner.Usage(call, answer);
            Usage = usage;
            yield return chunks.Usage(ToWire(usage));
        }
    }

    private readonly record struct MockSettings(int LatencyMs, int ChunkDelayMs)
    {
        public static MockSettings From(Uri baseUrl)
        {
            if (string.IsNullOrEmpty(baseUrl.Query)) return default;
            var q = HttpUtility.ParseQueryString(baseUrl.Query);
            return new MockSettings(Int(q["latency_ms"]), Int(q["chunk_delay_ms"]));
        }

        private static int Int(string? s) => int.TryParse(s, CultureInfo.InvariantCulture, out var v) && v > 0 ? Math.Min(v, 600_000) : 0;
    }
}
