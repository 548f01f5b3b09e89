using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Tests.Aot;
using Gateway.Tests.Fixtures;
using YamlDotNet.RepresentationModel;

namespace Gateway.Tests.Deploy;

/// <summary>
/// The API's <c>Dockerfile</c> and <c>compose.yaml</c>, read as text (no Docker engine runs here): the default image is the
/// ReadyToRun build, the <c>aot</c> stage publishes exactly as <see cref="NativeAotHostTests"/> and the README do (the test runs that
/// executable, its health check included), both images run the same way, and compose builds a stage that exists and takes
/// its health check from the image, so either build works under it.
/// </summary>
public sealed partial class ContainerImageTests
{
    [Fact]
    public void DefaultImage_IsTheReadyToRunBuild_OnTheAspNetRuntime()
    {
        var stages = Stages();
        var image = stages[^1];
        Assert.Equal("readytorun", image.Name);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:", image.From, StringComparison.Ordinal);
        Assert.Equal(["dotnet", "Gateway.Api.dll"], image.Entrypoint);
        var build = stages.Single(s => s.Name == image.CopiedFrom);
        Assert.Contains(build.Runs, r => r.Contains("--locked-mode", StringComparison.Ordinal) && r.Contains("-p:PublishReadyToRun=true", StringComparison.Ordinal));
    }

    [Fact]
    public void AotImage_PublishesAsTheTestedNativeBuild_AndRunsTheExecutableWithoutARuntime()
    {
        var stages = Stages();
        var image = stages.Single(s => s.Name == "aot");
        Assert.StartsWith("mcr.microsoft.com/dotnet/runtime-deps:", image.From, StringComparison.Ordinal);
        Assert.Equal(["/app/Gateway.Api"], image.Entrypoint);
        var build = stages.Single(s => s.Name == image.CopiedFrom);
        var publish = "dotnet " + string.Join(' ', NativeAotHostTests.PublishArguments) + " -o ";
        Assert.Contains(build.Runs, r => r.Contains(publish, StringComparison.Ordinal));
        Assert.Contains(publish, File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md")), StringComparison.Ordinal); // README, "Native AOT"
        Assert.Contains(build.Runs, r => r.Contains("clang", StringComparison.Ordinal) && r.Contains("zlib1g-dev", StringComparison.Ordinal));
        // The stripped symbols (tens of MB) stay in the build stage.
        Assert.Contains(build.Runs, r => r.Contains("rm -f /aot/*.dbg", StringComparison.Ordinal));
    }

    [Fact]
    public void BothImages_CheckHealthWithTheirOwnExecutable_AndShareUserPortAndSettings()
    {
        var stages = Stages();
        var images = new[] { stages.Single(s => s.Name == "aot"), stages[^1] };
        foreach (var image in images)
        {
            Assert.Equal([.. image.Entrypoint, "healthcheck"], image.HealthCheck);
            Assert.Equal("app", image.User);
            Assert.Equal("8080", image.Expose);
        }
        Assert.Equal(images[1].Environment.Order(StringComparer.Ordinal), images[0].Environment.Order(StringComparer.Ordinal));
        Assert.Contains("Gateway__Metering__JournalDirectory=/data/usage-journal", images[0].Environment);
    }

    [Fact]
    public void Compose_BuildsAStageTheDockerfileHas_AndTakesHealthFromTheImage()
    {
        var root = (YamlMappingNode)Compose().Documents[0].RootNode;
        var services = (YamlMappingNode)root["services"];
        var api = (YamlMappingNode)services["api-1"];
        var target = ((YamlScalarNode)((YamlMappingNode)api["build"])["target"]).Value!;
        var choice = ChoiceOf().Match(target);
        Assert.True(choice.Success, $"target {target}: a variable with a default");
        var names = Stages().Select(s => s.Name).ToList();
        Assert.Contains(choice.Groups["default"].Value, names);
        Assert.Equal("readytorun", choice.Groups["default"].Value);
        Assert.Contains("aot", names);
        // The tag follows the build, so an AOT build is llm-gateway-api:aot (overlays/aot's image) and never replaces :local.
        Assert.Equal("llm-gateway-api:${GATEWAY_API_BUILD:-local}", ((YamlScalarNode)api["image"]).Value);
        // A health check here would name one build's executable; the image's names its own.
        foreach (var name in (string[])["api-1", "api-2"])
            Assert.False(((YamlMappingNode)services[name]).Children.ContainsKey("healthcheck"), $"{name} sets its own healthcheck");
    }

    private sealed record Stage(string Name, string From, List<string> Runs, string? CopiedFrom, string[] Entrypoint, string[] HealthCheck,
        string? User, string? Expose, List<string> Environment);

    /// <summary>The Dockerfile's stages in order, with the instructions these tests read (continuation lines joined).</summary>
    private static List<Stage> Stages()
    {
        // Comment lines go first (Docker drops them inside a continued instruction too), then continuations are joined.
        var lines = File.ReadAllText(Path.Combine(RepoPaths.Root, "Dockerfile")).ReplaceLineEndings("\n").Split('\n').Select(l => l.Trim());
        var text = string.Join('\n', lines.Where(l => !l.StartsWith('#'))).Replace("\\\n", " ", StringComparison.Ordinal);
        var stages = new List<Stage>();
        foreach (var line in text.Split('\n').Where(l => l.Length > 0))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var (instruction, rest) = (line[..space], line[(space + 1)..].Trim());
            if (instruction == "FROM")
            {
                var parts = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("--", StringComparison.Ordinal)).ToArray();
                var name = parts.Length == 3 && parts[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? parts[2] : "";
                stages.Add(new Stage(name, parts[0], [], null, [], [], null, null, []));
                continue;
            }
            var stage = stages[^1];
            stages[^1] = instruction switch
            {
                "RUN" => stage with { Runs = [.. stage.Runs, rest] },
                "COPY" when rest.StartsWith("--from=", StringComparison.Ordinal) => stage with { CopiedFrom = rest["--from=".Length..].Split(' ')[0] },
                "ENTRYPOINT" => stage with { Entrypoint = JsonSerializer.Deserialize<string[]>(rest)! },
                "HEALTHCHECK" => stage with { HealthCheck = JsonSerializer.Deserialize<string[]>(rest[(rest.IndexOf("CMD ", StringComparison.Ordinal) + 4)..])! },
                "USER" => stage with { User = rest },
                "EXPOSE" => stage with { Expose = rest },
                "ENV" => stage with { Environment = [.. stage.Environment, .. rest.Split(' ', StringSplitOptions.RemoveEmptyEntries)] },
                _ => stage,
            };
        }
        return stages;
    }

    private static YamlStream Compose()
    {
        var yaml = new YamlStream();
        using var reader = new StringReader(File.ReadAllText(Path.Combine(RepoPaths.Root, "compose.yaml")));
        yaml.Load(reader);
        return yaml;
    }

    [GeneratedRegex(@"^\$\{GATEWAY_API_BUILD:-(?<default>[a-z0-9-]+)\}$")]
    private static partial Regex ChoiceOf();
}
