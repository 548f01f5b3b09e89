using System.Diagnostics;
using System.Net;
using Gateway.Core;
using Gateway.Core.Metering;
using Gateway.Tests.Fixtures;
using k8s;
using k8s.Models;

namespace Gateway.Tests.Deploy;

/// <summary>
/// <c>deploy/kubernetes</c> rendered by <c>kubectl kustomize</c> (base and the Redis overlay) and read back as typed Kubernetes
/// objects, strictly (an unknown or misspelt field fails, which is the schema check available offline), then checked against
/// the gateway itself: probe paths answer on the running API, the grace period covers the drain and the usage flush, the
/// journal is a per-pod volume, the HPA and PDB select the API's pods, and secrets are only referenced.
/// </summary>
public sealed class KubernetesManifestTests(TestEnvironment env)
{
    private static readonly Dictionary<string, List<object>> Rendered = [];

    [Theory]
    [InlineData("base")]
    [InlineData("overlays/redis")]
    [InlineData("overlays/aot")]
    public void Manifests_RenderAndReadStrictly_OneOfEachPartAndNoSecret(string overlay)
    {
        var objects = Render(overlay);

        Assert.Equal(
            ["Deployment/llm-gateway-admin", "HorizontalPodAutoscaler/llm-gateway-api", "PersistentVolumeClaim/llm-gateway-keys",
             "PodDisruptionBudget/llm-gateway-api", "Service/llm-gateway-admin", "Service/llm-gateway-api", "Service/llm-gateway-api-pods",
             "StatefulSet/llm-gateway-api"],
            objects.Cast<IKubernetesObject<V1ObjectMeta>>().Select(o => $"{o.Kind}/{o.Metadata.Name}").Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ApiProbes_PointAtHealthEndpointsTheGatewayServes_OnItsHttpPort()
    {
        var api = ApiContainer(Render("base"));
        var probes = new[] { api.StartupProbe, api.LivenessProbe, api.ReadinessProbe };
        Assert.All(probes, p => Assert.NotNull(p?.HttpGet));
        Assert.Equal(["/health/live", "/health/live", "/health/ready"], probes.Select(p => p.HttpGet.Path));

        // The named port is the container's 8080, where ASPNETCORE_URLS listens.
        var port = api.Ports.Single(p => p.Name == probes[0].HttpGet.Port.ToString());
        Assert.All(probes, p => Assert.Equal(port.Name, p.HttpGet.Port.ToString()));
        Assert.Contains($":{port.ContainerPort}", Env(api, "ASPNETCORE_URLS"), StringComparison.Ordinal);

        using var client = env.Gateway.Client();
        foreach (var path in probes.Select(p => p.HttpGet.Path).Distinct())
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(path)).StatusCode);
    }

    [Fact]
    public void ApiShutdown_GracePeriodCoversPreStop_RequestDrain_AndUsageFlush()
    {
        var set = StatefulSet(Render("base"));
        var api = ApiContainer(Render("base"));

        var preStop = api.Lifecycle?.PreStop?.Exec?.Command;
        Assert.NotNull(preStop);
        Assert.Equal("sleep", preStop[0]);
        var drain = int.Parse(Env(api, "Gateway__ShutdownDrainSeconds") ?? new GatewayOptions().ShutdownDrainSeconds.ToString());
        var flush = int.Parse(Env(api, "Gateway__Metering__FlushTimeoutSeconds") ?? new MeteringOptions().FlushTimeoutSeconds.ToString());
        Assert.True(set.Spec.Template.Spec.TerminationGracePeriodSeconds >= int.Parse(preStop[1]) + drain + flush,
            $"terminationGracePeriodSeconds {set.Spec.Template.Spec.TerminationGracePeriodSeconds} < preStop {preStop[1]} + drain {drain} + flush {flush}");
    }

    [Fact]
    public void UsageJournal_IsOnAVolumeOfItsOwnPerPod_AndMigrationsRunAtStartUp()
    {
        var set = StatefulSet(Render("base"));
        var api = ApiContainer(Render("base"));

        var mount = api.VolumeMounts.Single(m => m.MountPath == Env(api, "Gateway__Metering__JournalDirectory"));
        var claim = set.Spec.VolumeClaimTemplates.Single(c => c.Metadata.Name == mount.Name);
        Assert.Equal(["ReadWriteOnce"], claim.Spec.AccessModes);
        Assert.DoesNotContain(set.Spec.Template.Spec.Volumes, v => v.Name == mount.Name); // not a shared or pod-scoped volume
        Assert.NotEqual("false", Env(api, "Gateway__MigrateOnStart"));
    }

    [Fact]
    public void HpaPdbAndServices_SelectTheApiPods_AndOnlyThem()
    {
        var objects = Render("base");
        var set = StatefulSet(objects);
        var podLabels = set.Spec.Template.Metadata.Labels;
        var adminLabels = objects.OfType<V1Deployment>().Single().Spec.Template.Metadata.Labels;
        Assert.True(Selects(set.Spec.Selector.MatchLabels, podLabels));

        var hpa = objects.OfType<V2HorizontalPodAutoscaler>().Single();
        Assert.Equal(("apps/v1", "StatefulSet", set.Metadata.Name), (hpa.Spec.ScaleTargetRef.ApiVersion, hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name));
        Assert.True(hpa.Spec.MinReplicas >= 2, "at least two API pods, so one can drain");
        Assert.Contains(hpa.Spec.Metrics, m => m.Resource?.Name == "cpu");
        Assert.True(ApiContainer(objects).Resources.Requests.ContainsKey("cpu"), "CPU utilization needs a CPU request");

        var pdb = objects.OfType<V1PodDisruptionBudget>().Single();
        Assert.True(Selects(pdb.Spec.Selector.MatchLabels, podLabels));
        Assert.False(Selects(pdb.Spec.Selector.MatchLabels, adminLabels));

        var services = objects.OfType<V1Service>().ToDictionary(s => s.Metadata.Name);
        Assert.True(Selects(services["llm-gateway-api"].Spec.Selector, podLabels));
        Assert.False(Selects(services["llm-gateway-api"].Spec.Selector, adminLabels));
        Assert.True(Selects(services["llm-gateway-admin"].Spec.Selector, adminLabels));
        Assert.Equal(set.Spec.ServiceName, services[set.Spec.ServiceName].Metadata.Name);
        Assert.Equal("None", services[set.Spec.ServiceName].Spec.ClusterIP);
    }

    [Fact]
    public void Secrets_AreReferencedByName_NeverWrittenIntoTheManifests()
    {
        foreach (var overlay in (string[])["base", "overlays/redis", "overlays/aot"])
        {
            var objects = Render(overlay);
            Assert.DoesNotContain(objects, o => o is V1Secret);
            foreach (var container in Containers(objects))
            {
                foreach (var variable in container.Env)
                {
                    if (variable.Name.StartsWith("ConnectionStrings__", StringComparison.Ordinal) || variable.Name == "Gateway__MasterKey"
                        || variable.Name.EndsWith("_API_KEY", StringComparison.Ordinal))
                        Assert.True(variable.ValueFrom?.SecretKeyRef is { Name: "llm-gateway" }, $"{container.Name}: {variable.Name} must come from the llm-gateway Secret");
                    Assert.DoesNotContain("Password=", variable.Value ?? "", StringComparison.OrdinalIgnoreCase);
                }
            }
            var providers = ApiContainer(objects).EnvFrom.Single();
            Assert.Equal(("llm-gateway-providers", true), (providers.SecretRef.Name, providers.SecretRef.Optional ?? false));
        }
    }

    [Fact]
    public void RedisOverlay_SetsTheRedisConnectionFromTheSecret_BaseLeavesItOut()
    {
        Assert.Null(ApiContainer(Render("base")).Env.SingleOrDefault(e => e.Name == "ConnectionStrings__Redis"));
        var redis = ApiContainer(Render("overlays/redis")).Env.Single(e => e.Name == "ConnectionStrings__Redis");
        Assert.Equal(("llm-gateway", "redis-connection"), (redis.ValueFrom.SecretKeyRef.Name, redis.ValueFrom.SecretKeyRef.Key));
        // The overlay adds to the base's variables; it does not replace them.
        Assert.Equal(ApiContainer(Render("base")).Env.Count + 1, ApiContainer(Render("overlays/redis")).Env.Count);
    }

    [Fact]
    public void AotOverlay_RunsTheNativeImage_InLessMemory_AndIsOtherwiseTheBase()
    {
        var (base_, aot) = (ApiContainer(Render("base")), ApiContainer(Render("overlays/aot")));
        Assert.Equal("llm-gateway-api:aot", aot.Image);

        // Memory sized for the Native AOT build: less than the base asks, and a limit with room above its measured peak at
        // 2,000 concurrent streams (283-372 MB RSS, bench/RESULTS.md).
        var (request, limit) = (aot.Resources.Requests["memory"].ToInt64(), aot.Resources.Limits["memory"].ToInt64());
        Assert.True(request < base_.Resources.Requests["memory"].ToInt64(), $"request {request} not below the base's");
        Assert.True(limit >= 1.5 * 372_000_000 && limit < base_.Resources.Limits["memory"].ToInt64(), $"limit {limit}");
        Assert.Equal(base_.Resources.Requests["cpu"], aot.Resources.Requests["cpu"]); // the HPA's utilisation is of this request

        // Everything else is the base's, object for object (the admin app's image included).
        Assert.Equal(Comparable(Render("base")), Comparable(Render("overlays/aot")));
    }

    /// <summary>The rendered objects as JSON, with the API container's image and resources left out.</summary>
    private static List<string> Comparable(List<object> objects) =>
        objects.Select(o =>
        {
            var json = KubernetesJson.Serialize(o);
            if (o is not V1StatefulSet) return json;
            var copy = KubernetesJson.Deserialize<V1StatefulSet>(json);
            var api = copy.Spec.Template.Spec.Containers.Single(c => c.Name == "api");
            (api.Image, api.Resources) = (null, null);
            return KubernetesJson.Serialize(copy);
        }).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void Images_AreTheGatewaysOwn_BuiltFromTheDockerfiles()
    {
        var objects = Render("base");
        Assert.StartsWith("llm-gateway-api:", ApiContainer(objects).Image, StringComparison.Ordinal);
        Assert.StartsWith("llm-gateway-admin:", objects.OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single().Image, StringComparison.Ordinal);
        Assert.Contains("llm-gateway-api", File.ReadAllText(Path.Combine(RepoPaths.Root, "Dockerfile")), StringComparison.Ordinal);
        Assert.Contains("llm-gateway-admin", File.ReadAllText(Path.Combine(RepoPaths.Root, "Dockerfile.admin")), StringComparison.Ordinal);
    }

    private static bool Selects(IDictionary<string, string> selector, IDictionary<string, string> labels) =>
        selector.Count > 0 && selector.All(s => labels.TryGetValue(s.Key, out var v) && v == s.Value);

    private static V1StatefulSet StatefulSet(List<object> objects) => objects.OfType<V1StatefulSet>().Single();

    private static V1Container ApiContainer(List<object> objects) => StatefulSet(objects).Spec.Template.Spec.Containers.Single(c => c.Name == "api");

    private static IEnumerable<V1Container> Containers(List<object> objects) =>
        objects.OfType<V1StatefulSet>().SelectMany(s => s.Spec.Template.Spec.Containers)
            .Concat(objects.OfType<V1Deployment>().SelectMany(d => d.Spec.Template.Spec.Containers));

    private static string? Env(V1Container container, string name) => container.Env.SingleOrDefault(e => e.Name == name)?.Value;

    /// <summary>Runs <c>kubectl kustomize</c> on a folder of deploy/kubernetes and reads every object strictly (unknown fields fail).</summary>
    private static List<object> Render(string overlay)
    {
        lock (Rendered)
        {
            if (Rendered.TryGetValue(overlay, out var cached)) return cached;
            var kubectl = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "kubectl")).FirstOrDefault(File.Exists)
                ?? throw new InvalidOperationException("kubectl is not on PATH: install it (Debian: kubernetes-client; .ci/run does).");
            var start = new ProcessStartInfo(kubectl) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in (string[])["kustomize", Path.Combine(RepoPaths.Root, "deploy", "kubernetes", overlay)]) start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            var errors = process.StandardError.ReadToEndAsync();
            var yaml = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"kubectl kustomize {overlay} failed: {errors.Result}");
            var objects = KubernetesYaml.LoadAllFromString(yaml, typeMap: null, strict: true);
            Rendered[overlay] = objects;
            return objects;
        }
    }
}
