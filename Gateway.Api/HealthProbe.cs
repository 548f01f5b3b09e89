namespace Gateway.Api;

/// <summary>Asks this machine's gateway for /health/ready; exit code 0 when ready.</summary>
internal static class HealthProbe
{
    public static async Task<int> RunAsync(string? urls)
    {
        var first = (urls ?? "http://127.0.0.1:8080").Split(';', StringSplitOptions.RemoveEmptyEntries)[0];
        var uri = new UriBuilder(first.Replace("://+", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://*", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal)) { Path = "/health/ready" }.Uri;
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await client.GetAsync(uri);
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return 1;
        }
    }
}
