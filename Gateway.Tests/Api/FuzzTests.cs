using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Thousands of random and mutated bodies against the real host over HTTP: nothing may answer 5xx, every error
/// must have its front door's shape (OpenAI's, Anthropic's on /v1/messages), the host must keep serving, and each request
/// must leave exactly one usage row.
/// A failure names its seed; set GATEWAY_FUZZ_SEED to replay it.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class FuzzTests(TestEnvironment env, ITestOutputHelper output)
{
    private const int Bodies = 3000;
    private const int Parallelism = 16;
    private const string SeedVariable = "GATEWAY_FUZZ_SEED";

    [Fact]
    public async Task V1Endpoints_RandomAndMutatedBodies_AnswerBelow500InOpenAIShapeAndMeterEachOnce()
    {
        var seed = Seed();
        var cases = new BodyFuzzer(new Random(seed)).Generate(Bodies);
        // A hard cap and the response cache put budgets, leases and cache keys on the path too.
        var (key, keyId) = await env.Gateway.CreateKeyFromJsonAsync($$"""{"name":"fuzz-{{seed}}","hard_cap_usd":1000,"cache_ttl_seconds":60}""");
        using var client = env.Gateway.Client(key);
        var problems = new ConcurrentQueue<string>();
        var requestIds = new ConcurrentDictionary<Guid, int>();
        var statuses = new ConcurrentDictionary<int, int>();
        var ct = TestContext.Current.CancellationToken;

        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, async (c, token) =>
        {
            try
            {
                var (status, id, problem) = await SendAsync(client, c, token);
                statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                if (id is { } requestId && !requestIds.TryAdd(requestId, c.Index)) problem ??= $"request id {requestId} answered twice";
                if (problem is not null) problems.Enqueue($"#{c.Index} [{c.Recipe}] {c.Path} ({c.ContentType ?? "no content type"}{(c.Chunked ? ", chunked" : "")}) → {status}: {problem}; body {c.Preview()}");
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                problems.Enqueue($"#{c.Index} [{c.Recipe}] {c.Path}: no answer ({ex.GetType().Name}: {ex.Message}); body {c.Preview()}");
            }
        });

        var replay = $"seed {seed} (replay: {SeedVariable}={seed})";
        output.WriteLine("Statuses: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Value}")));
        foreach (var problem in problems) output.WriteLine(problem);
        Assert.True(problems.IsEmpty, $"Fuzz {replay}: {problems.Count} bad answers. First ones:\n" + string.Join("\n", problems.Take(10)));

        // The host still serves real requests.
        using (var chat = await client.PostAsync(BodyFuzzer.ChatPath, Json("""{"model":"mock","messages":[{"role":"user","content":"still there?"}]}"""), ct))
            Assert.True(chat.StatusCode == HttpStatusCode.OK, $"Fuzz {replay}: a valid chat request after the fuzz got {(int)chat.StatusCode}.");
        using (var embed = await client.PostAsync(BodyFuzzer.EmbeddingsPath, Json("""{"model":"mock","input":"still there?"}"""), ct))
            Assert.True(embed.StatusCode == HttpStatusCode.OK, $"Fuzz {replay}: a valid embeddings request after the fuzz got {(int)embed.StatusCode}.");

        // Exactly one usage row per request sent with the key: the fuzz's and the two above.
        var sent = cases.Count + 2;
        var rows = await SettledUsageRowsAsync(keyId, sent, ct);
        Assert.True(rows.Count == sent, $"Fuzz {replay}: {sent} requests sent, {rows.Count} usage rows stored.");
        Assert.True(rows.Select(r => r.RequestId).Distinct().Count() == sent, $"Fuzz {replay}: a request id has several usage rows.");
        var missing = requestIds.Keys.Except(rows.Select(r => r.RequestId)).ToList();
        Assert.True(missing.Count == 0, $"Fuzz {replay}: {missing.Count} answered requests have no usage row, e.g. #{(missing.Count > 0 ? requestIds[missing[0]] : -1)}.");
        Assert.True(rows.All(r => r.Status < 500), $"Fuzz {replay}: a usage row records a 5xx: {string.Join(", ", rows.Where(r => r.Status >= 500).Select(r => $"{r.RequestId} {r.Status} {r.ErrorKind}"))}.");
    }

    [Fact]
    public Task MessagesEndpoint_RandomAndMutatedAnthropicBodies_AnswerBelow500InAnthropicShapeAndMeterEachOnce() =>
        FuzzDoorAsync(seed => new BodyFuzzer(new Random(seed), anthropic: true), "anthropic.messages", AnthropicErrorShapeProblem, client =>
        {
            client.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
            return "x-api-key";
        });

    [Fact]
    public Task ResponsesEndpoint_RandomAndMutatedResponsesBodies_AnswerBelow500InOpenAIShapeAndMeterEachOnce() =>
        FuzzDoorAsync(seed => new BodyFuzzer(new Random(seed), responses: true), "openai.responses", ErrorShapeProblem, _ => null);

    private int Seed()
    {
        var seed = Environment.GetEnvironmentVariable(SeedVariable) is { Length: > 0 } fixedSeed
            ? int.Parse(fixedSeed, CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        output.WriteLine($"Fuzz seed {seed} ({SeedVariable}={seed} replays it).");
        return seed;
    }

    /// <summary>
    /// Half as many bodies as the chat fuzz, through one front door: nothing at or above 500, every error in the door's shape, one
    /// usage row per request, each recorded as <paramref name="frontDoor"/>.
    /// </summary>
    /// <param name="fuzzer">Makes the door's bodies from the run's seed.</param>
    /// <param name="frontDoor">The door's name on usage rows.</param>
    /// <param name="errorShape">Null when an error body has the door's shape, else what is wrong.</param>
    /// <param name="configure">Adds the door's own headers; returns the header carrying the key (null: Bearer).</param>
    private async Task FuzzDoorAsync(Func<int, BodyFuzzer> fuzzer, string frontDoor, Func<MediaTypeHeaderValue?, byte[], string?> errorShape,
        Func<HttpClient, string?> configure)
    {
        var seed = Seed();
        var cases = fuzzer(seed).Generate(Bodies / 2);
        var (key, keyId) = await env.Gateway.CreateKeyFromJsonAsync($$"""{"name":"fuzz-{{frontDoor}}-{{seed}}","hard_cap_usd":1000,"cache_ttl_seconds":60}""");
        using var client = env.Gateway.Client();
        if (configure(client) is { } keyHeader) client.DefaultRequestHeaders.Add(keyHeader, key);
        else client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var problems = new ConcurrentQueue<string>();
        var requestIds = new ConcurrentDictionary<Guid, int>();
        var ct = TestContext.Current.CancellationToken;

        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, async (c, token) =>
        {
            try
            {
                var (status, id, problem) = await SendAsync(client, c, token, errorShape);
                if (id is { } requestId && !requestIds.TryAdd(requestId, c.Index)) problem ??= $"request id {requestId} answered twice";
                if (problem is not null) problems.Enqueue($"#{c.Index} [{c.Recipe}] → {status}: {problem}; body {c.Preview()}");
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                problems.Enqueue($"#{c.Index} [{c.Recipe}]: no answer ({ex.GetType().Name}: {ex.Message}); body {c.Preview()}");
            }
        });

        var replay = $"seed {seed} (replay: {SeedVariable}={seed})";
        foreach (var problem in problems) output.WriteLine(problem);
        Assert.True(problems.IsEmpty, $"Fuzz {replay}: {problems.Count} bad answers. First ones:\n" + string.Join("\n", problems.Take(10)));
        var rows = await SettledUsageRowsAsync(keyId, cases.Count, ct);
        Assert.True(rows.Count == cases.Count, $"Fuzz {replay}: {cases.Count} requests sent, {rows.Count} usage rows stored.");
        Assert.True(rows.Select(r => r.RequestId).Distinct().Count() == cases.Count, $"Fuzz {replay}: a request id has several usage rows.");
        Assert.True(rows.All(r => r.Status < 500 && r.FrontDoor == frontDoor), $"Fuzz {replay}: a usage row records a 5xx or another door.");
    }

    /// <summary>Null when the body is Anthropic's error shape: {"type":"error","error":{"type":string,"message":string}}.</summary>
    private static string? AnthropicErrorShapeProblem(MediaTypeHeaderValue? contentType, byte[] body)
    {
        if (contentType?.MediaType != "application/json") return $"error with content type {contentType?.MediaType ?? "none"}: {Preview(body)}";
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var kind) || kind.ValueKind != JsonValueKind.String
                || kind.GetString() != "error" || !root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
                return "not Anthropic's error shape: " + Preview(body);
            if (!error.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString()!.Length == 0)
                return "error without a type: " + Preview(body);
            if (!error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String || message.GetString()!.Length == 0)
                return "error without a message: " + Preview(body);
            return message.GetString()!.Contains("   at ", StringComparison.Ordinal) ? "error message holds a stack trace" : null;
        }
        catch (JsonException)
        {
            return "error body is not JSON: " + Preview(body);
        }
    }

    /// <summary>Sends one case; returns its status, its request id and what is wrong with the answer (null: nothing).</summary>
    private static async Task<(int Status, Guid? RequestId, string? Problem)> SendAsync(HttpClient client, FuzzCase c, CancellationToken ct,
        Func<MediaTypeHeaderValue?, byte[], string?>? errorShape = null)
    {
        using HttpContent content = c.Chunked ? new StreamContent(new NonSeekableStream(c.Body)) : new ByteArrayContent(c.Body);
        if (c.ContentType is { } type) content.Headers.TryAddWithoutValidation("Content-Type", type);
        using var request = new HttpRequestMessage(HttpMethod.Post, c.Path) { Content = content };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        var status = (int)response.StatusCode;
        var body = await response.Content.ReadAsByteArrayAsync(ct);
        Guid? id = response.Headers.TryGetValues("x-gateway-request-id", out var ids) && Guid.TryParse(ids.SingleOrDefault(), out var parsed) ? parsed : null;
        if (status >= 500) return (status, id, "server error: " + Preview(body));
        if (id is null) return (status, id, "no x-gateway-request-id header");
        if (status >= 400) return (status, id, (errorShape ?? ErrorShapeProblem)(response.Content.Headers.ContentType, body));
        return (status, id, status == 200 ? null : "unexpected status");
    }

    /// <summary>Null when the body is OpenAI's error shape: {"error":{"message":string,"type":string,"param":…,"code":…}}.</summary>
    private static string? ErrorShapeProblem(MediaTypeHeaderValue? contentType, byte[] body)
    {
        if (contentType?.MediaType != "application/json") return $"error with content type {contentType?.MediaType ?? "none"}: {Preview(body)}";
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("error", out var error)
                || error.ValueKind != JsonValueKind.Object)
                return "error body without an error object: " + Preview(body);
            if (!error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String || message.GetString()!.Length == 0)
                return "error without a message: " + Preview(body);
            if (!error.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                return "error without a type: " + Preview(body);
            if (!error.TryGetProperty("param", out var param) || param.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                return "error without param: " + Preview(body);
            if (!error.TryGetProperty("code", out var code) || code.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                return "error without code: " + Preview(body);
            return message.GetString()!.Contains("   at ", StringComparison.Ordinal) ? "error message holds a stack trace" : null;
        }
        catch (JsonException)
        {
            return "error body is not JSON: " + Preview(body);
        }
    }

    /// <summary>The key's usage rows once the background writer has stored them all (and nothing more arrives).</summary>
    private async Task<List<UsageRow>> SettledUsageRowsAsync(Guid keyId, int expected, CancellationToken ct)
    {
        var deadline = Environment.TickCount64 + 30_000;
        var rows = await env.UsageRowsForKeyAsync(keyId);
        while (rows.Count < expected && Environment.TickCount64 < deadline)
        {
            await Task.Delay(200, ct);
            rows = await env.UsageRowsForKeyAsync(keyId);
        }
        // A duplicate would arrive late: wait until the writer stored a request made after all of these.
        await env.UsageWriterCaughtUpAsync(env.Gateway);
        return await env.UsageRowsForKeyAsync(keyId);
    }

    /// <summary>A body stream of unknown length, so HttpClient sends it chunked and the gateway finds its size while reading.</summary>
    private sealed class NonSeekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }

    private static string Preview(byte[] body) => FuzzCase.Escape(body, 300);
}
