using System.Diagnostics;
using System.Text.Json;
using Gateway.Core.Catalog;
using Gateway.Core.Metering;
using Gateway.Core.Providers;

namespace Gateway.Core.Telemetry;

/// <summary>
/// One call to a provider, as the GenAI client conventions describe it: a CLIENT span <c>{operation} {model}</c> and the
/// <c>gen_ai.client.*</c> metrics (operation duration, with <c>error.type</c> when it failed; time to first chunk of a
/// stream; token usage the provider reported). <see cref="Failover.FailoverExecutor"/> starts one per candidate it calls
/// and ends it, except for a stream that opened, which <see cref="Failover.PrimedStream"/> ends when it is disposed.
/// </summary>
public sealed class UpstreamAttempt
{
    private readonly GatewayMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly long _started;
    private readonly Activity? _activity;
    private TagList _tags; // operation, provider, gateway provider, request model (+ response model, error type at the end)
    private string? _responseModel;
    private TokenUsage? _usage;
    private string? _error;
    private bool _ended;

    internal UpstreamAttempt(string operation, ModelRoute route, bool streaming, GatewayMetrics? metrics, TimeProvider time)
    {
        _metrics = metrics;
        _time = time;
        var flavor = GatewayTelemetry.ProviderFlavor(route.Provider.Protocol);
        _tags = new TagList
        {
            { GatewayTelemetry.OperationName, operation },
            { GatewayTelemetry.ProviderName, flavor },
            { GatewayTelemetry.GatewayProvider, route.Provider.Name },
            { GatewayTelemetry.RequestModel, route.UpstreamModel },
        };
        // The name is built only when someone listens: no string per request otherwise.
        if (GatewayTelemetry.Source.HasListeners())
            _activity = GatewayTelemetry.Source.StartActivity($"{operation} {route.UpstreamModel}", ActivityKind.Client);
        if (_activity is { IsAllDataRequested: true } span)
        {
            foreach (var tag in _tags) span.SetTag(tag.Key, tag.Value);
            // Scheme, host and port only: a base URL's path and query stay out of telemetry.
            span.SetTag("server.address", route.Provider.BaseUrl.Host);
            span.SetTag("server.port", route.Provider.BaseUrl.Port);
            if (operation == GatewayTelemetry.Chat) span.SetTag("gen_ai.request.stream", streaming);
        }
        _started = time.GetTimestamp();
    }

    /// <summary>The stream's first chunk with content (text or a tool call) arrived: the time the client waited for its first token.</summary>
    internal void FirstChunk()
    {
        var seconds = _time.GetElapsedTime(_started).TotalSeconds;
        _metrics?.FirstChunk(_tags, seconds);
        _activity?.SetTag("gen_ai.response.time_to_first_chunk", seconds);
    }

    /// <summary>What the provider answered: the model it says served, and the usage it reported (null: none reported).</summary>
    internal void Answered(TokenUsage? usage, string? responseModel)
    {
        _usage = usage ?? _usage;
        _responseModel = responseModel ?? _responseModel;
    }

    /// <summary>A whole (non-streamed) answer; its finish reasons and id are read only when the span is recorded.</summary>
    internal void Answered(UpstreamCompletion completion, bool chat)
    {
        Answered(completion.Usage, completion.ServedModel);
        if (chat && _activity is { IsAllDataRequested: true } span) DescribeAnswer(span, completion.Body);
    }

    /// <summary>
    /// The call failed: <paramref name="errorType"/> is the failure's outcome (<c>rate_limited</c>, <c>timeout</c>…) or an
    /// exception's type. The first reason given stands. <paramref name="billed"/> is usage the provider reported anyway.
    /// </summary>
    internal void Failed(string errorType, TokenUsage? billed = null)
    {
        _error ??= errorType;
        _usage ??= billed;
    }

    /// <summary>Records the metrics and ends the span (once; later calls do nothing).</summary>
    internal void End()
    {
        if (_ended) return;
        _ended = true;
        var tags = _tags;
        if (_responseModel is not null) tags.Add(GatewayTelemetry.ResponseModel, _responseModel);
        if (_usage is { } usage) _metrics?.Tokens(tags, usage);
        if (_error is not null) tags.Add(GatewayTelemetry.ErrorType, _error);
        _metrics?.OperationEnded(tags, _time.GetElapsedTime(_started).TotalSeconds);
        if (_activity is null) return;
        if (_activity.IsAllDataRequested)
        {
            if (_responseModel is not null) _activity.SetTag(GatewayTelemetry.ResponseModel, _responseModel);
            if (_usage is { } used)
            {
                _activity.SetTag("gen_ai.usage.input_tokens", used.PromptTokens);
                _activity.SetTag("gen_ai.usage.output_tokens", used.CompletionTokens);
                if (used.CachedTokens > 0) _activity.SetTag("gen_ai.usage.cache_read.input_tokens", used.CachedTokens);
            }
            if (_error is not null)
            {
                _activity.SetTag(GatewayTelemetry.ErrorType, _error);
                _activity.SetStatus(ActivityStatusCode.Error);
            }
        }
        _activity.Dispose();
    }

    /// <summary>
    /// A candidate the breaker refused at the last moment (it went half-open to another request): no call was made, so
    /// no metric; the span ends saying so.
    /// </summary>
    internal void Refused(string reason)
    {
        _ended = true;
        if (_activity is null) return;
        _activity.SetTag(GatewayTelemetry.ErrorType, reason);
        _activity.SetStatus(ActivityStatusCode.Error);
        _activity.Dispose();
    }

    // Every answer leaves the providers as an OpenAI chat.completion: its id and each choice's finish_reason.
    private static void DescribeAnswer(Activity span, ReadOnlyMemory<byte> body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return;
            if (root.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String) span.SetTag("gen_ai.response.id", id.GetString());
            if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array) return;
            var reasons = new List<string>(choices.GetArrayLength());
            foreach (var choice in choices.EnumerateArray())
            {
                if (choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("finish_reason", out var reason) && reason.ValueKind == JsonValueKind.String)
                    reasons.Add(reason.GetString()!);
            }
            if (reasons.Count > 0) span.SetTag("gen_ai.response.finish_reasons", reasons.ToArray());
        }
        catch (JsonException)
        {
            // The adapter already accepted the body; a span without finish reasons is all this costs.
        }
    }
}
