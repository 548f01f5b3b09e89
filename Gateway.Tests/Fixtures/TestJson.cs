using System.Text;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// Request bodies written as JSON text in the tests. Imported into every test file (<c>&lt;Using Static="true"&gt;</c> in the
/// project), so a test reads <c>client.PostAsync(url, Json("""{…}"""))</c>.
/// </summary>
public static class TestJson
{
    /// <summary><paramref name="json"/> as an <c>application/json</c> UTF-8 body, sent exactly as written (malformed on purpose, too).</summary>
    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
}
