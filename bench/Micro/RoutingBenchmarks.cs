using BenchmarkDotNet.Attributes;
using Gateway.Core.Chat;
using Gateway.Core.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Micro;

/// <summary>
/// The routing decision as the chat endpoint asks for it (<see cref="ChatGateway.Route"/>: the key's model permission, the
/// rule book's twenty rules in priority order, the candidate chain from the model catalog), on a parsed request.
/// </summary>
public class RoutingBenchmarks
{
    private HotPathFixture _fixture = null!;
    private ChatGateway _gateway = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _fixture = await HotPathFixture.GetAsync();
        _gateway = _fixture.Services.GetRequiredService<ChatGateway>();
    }

    [Benchmark(Description = "routing: auto alias, 19 rules fail, weighted default")]
    public RouteDecision? Auto() => _gateway.Route(_fixture.Key, _fixture.AutoRequest, HotPathFixture.Header).Decision;

    [Benchmark(Description = "routing: model alias no rule covers")]
    public RouteDecision? Direct() => _gateway.Route(_fixture.Key, _fixture.DirectRequest, HotPathFixture.Header).Decision;
}
