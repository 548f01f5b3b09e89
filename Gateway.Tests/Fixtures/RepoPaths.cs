namespace Gateway.Tests.Fixtures;

public static class RepoPaths
{
    /// <summary>The repository root: the folder above the test binaries that holds Gateway.sln.</summary>
    public static string Root { get; } = Find();

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Gateway.sln not found above the test binaries.");
    }
}
