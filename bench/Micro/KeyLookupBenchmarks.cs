using BenchmarkDotNet.Attributes;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Microsoft.Extensions.DependencyInjection;

namespace Micro;

/// <summary>
/// Authentication as Gateway.Api's key filter does it for every /v1 request: the bearer token looked up in the in-memory
/// snapshot of 10,000 keys (SHA-256 of the token, a frozen-dictionary probe, a constant-time comparison).
/// </summary>
public class KeyLookupBenchmarks
{
    private KeyCache _keys = null!;
    private string _token = "";
    private string _unknown = "";

    [GlobalSetup]
    public async Task SetupAsync()
    {
        var fixture = await HotPathFixture.GetAsync();
        _keys = fixture.Services.GetRequiredService<KeyCache>();
        _token = fixture.Token;
        _unknown = ApiKeySecret.Create().Key;
    }

    [Benchmark(Description = "key lookup: hit in 10,000 keys")]
    public GatewayKey? Hit() => _keys.Authenticate(_token).Key;

    [Benchmark(Description = "key lookup: unknown key")]
    public GatewayError? Unknown() => _keys.Authenticate(_unknown).Failure;
}
