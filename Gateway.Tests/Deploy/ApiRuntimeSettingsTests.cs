using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Deploy;

/// <summary>
/// The runtime settings the API host ships with (its <c>runtimeconfig.json</c>, which the image, the Native AOT build and
/// bench/run.sh all take from the project), as the README's "Runtime settings" lists them.
/// </summary>
public sealed class ApiRuntimeSettingsTests
{
    [Fact]
    public void ApiHost_ShipsServerGcAndShortThreadPoolSpinning_AsTheReadmeSays()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Gateway.Api.runtimeconfig.json")))!;
        var properties = config["runtimeOptions"]!["configProperties"]!;

        Assert.True((bool)properties["System.GC.Server"]!);
        Assert.False((bool)properties["System.GC.Concurrent"]!);
        Assert.Equal(8, (int)properties["System.Threading.ThreadPool.UnfairSemaphoreSpinLimit"]!);
        var readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));
        Assert.Contains("`System.Threading.ThreadPool.UnfairSemaphoreSpinLimit` 8", readme, StringComparison.Ordinal);
        // The gen0 cap is the Native AOT build's alone (NativeAotHostTests reads it from that build's start-up log).
        Assert.Null(properties["System.GC.DGen0GrowthMaxFactor"]);
        Assert.Contains("`System.GC.DGen0GrowthMaxFactor` 750", readme, StringComparison.Ordinal);
    }
}
