using BenchmarkDotNet.Attributes;
using Gateway.Core.Chat;
using Gateway.Core.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Micro;

/// <summary>
/// The routing decision as the chat endpoint asks for it (<see cref="ChatRouter.Route"/>: the key's model permission, the
/// rule book's twenty rules in priority order, the candidate chain from the model catalog), on a parsed request.
/// </summary>
public class RoutingBenchmarks
{
    private HotPathFixture _fixture = null!;
    private ChatRouter _router = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _fixture = await HotPathFixture.GetAsync();
        _router = _fixture.Services.GetRequiredService<ChatRouter>();
    }

    [Benchmark(Description = "routing: auto alias, 19 rules fail, weighted default")]
    public RouteDecision? Auto() => _router.Route(_fixture.Key, _fixture.AutoRequest, HotPathFixture.Header).Decision;

    [Benchmark(Description = "routing: model alias no rule covers")]
    public RouteDecision? Direct() => _router.Route(_fixture.Key, _fixture.DirectRequest, HotPathFixture.Header).Decision;
}
