using System.Collections.Frozen;
using Gateway.Core.Catalog;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Core;

public sealed class RequestMeterTests
{
    private static readonly TokenCounter Tokens = new();
    private static readonly GatewayKey Key = new(Guid.NewGuid(), "k", "gw-", new byte[32], FrozenSet<string>.Empty, null, null);
    private static readonly ModelRoute Route = new(Guid.NewGuid(), "m",
        new ProviderInfo(Guid.NewGuid(), "p", "openai", new Uri("http://127.0.0.1/"), null, null, ProviderSettings.Default),
        "up", 2m, 10m, 1m, 2.5m, 4m, null, null, TimeProvider.System.GetUtcNow());

    private static (RequestMeter Meter, UsageChannel Channel) NewMeter()
    {
        var channel = new UsageChannel(Options.Create(new MeteringOptions()), NullLogger<UsageChannel>.Instance);
        var meter = new RequestMeter(Key, Tokens, channel, TimeProvider.System,
            new Gateway.Core.Budgets.BudgetCalendar(Options.Create(new Gateway.Core.GatewayOptions()), TimeProvider.System));
        meter.Asked(new ChatCompletionRequest { Model = "m", Messages = [new ChatMessage { Role = "user", Content = System.Text.Json.JsonDocument.Parse("\"hello there\"").RootElement }] });
        meter.Routed(Route);
        return (meter, channel);
    }

    private static async Task<UsageRecord> PublishedAsync(RequestMeter meter, UsageChannel channel)
    {
        await meter.PublishAsync();
        await meter.PublishAsync(); // a second call must not queue a second record
        Assert.True(channel.Reader.TryRead(out var record));
        Assert.False(channel.Reader.TryRead(out _));
        return record;
    }

    [Fact]
    public async Task ClientLeavesAfterTheProviderReportedUsage_KeepsTheReportedUsage()
    {
        var (meter, channel) = NewMeter();

        meter.Succeeded(new TokenUsage(1000, 500, 200), "up-2024", "");
        meter.ClientDisconnected("");

        var record = await PublishedAsync(meter, channel);
        Assert.Equal((499, false, 1000, 500, 200), (record.Status, record.UsageEstimated, record.PromptTokens, record.CompletionTokens, record.CachedTokens));
        Assert.Equal((800 * 2m + 200 * 1m + 500 * 10m) / 1_000_000m, record.CostUsd);
    }

    [Fact]
    public async Task ClientLeavesBeforeAnyUsage_IsEstimatedFromTheTokenizer()
    {
        var (meter, channel) = NewMeter();

        meter.ClientDisconnected("partial answer text");

        var record = await PublishedAsync(meter, channel);
        Assert.True(record.UsageEstimated);
        Assert.Equal(Tokens.Count("partial answer text"), record.CompletionTokens);
        Assert.True(record.PromptTokens > 0 && record.CostUsd > 0);
    }

    [Fact]
    public async Task StreamBreaksAfterUsage_KeepsTheReportedUsageWithTheErrorStatus()
    {
        var (meter, channel) = NewMeter();

        meter.Failed(GatewayError.UpstreamError("p", "broke"), "some text", new TokenUsage(10, 3, 0));

        var record = await PublishedAsync(meter, channel);
        Assert.Equal((502, "upstream_error", false, 10, 3), (record.Status, record.ErrorKind, record.UsageEstimated, record.PromptTokens, record.CompletionTokens));
    }
}
