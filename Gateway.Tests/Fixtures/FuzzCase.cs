using System.Text;
using System.Text.Json;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// One generated request: where it goes, its bytes, its Content-Type (null: none), whether it is sent chunked (no
/// Content-Length) and how it was made.
/// </summary>
public sealed record FuzzCase(int Index, string Path, byte[] Body, string? ContentType, bool Chunked, string Recipe)
{
    /// <summary>The start of the body, escaped, for a failure message.</summary>
    public string Preview(int max = 300) => Escape(Body, max);

    /// <summary>The first <paramref name="max"/> bytes as a JSON string literal (control characters and bad UTF-8 visible).</summary>
    public static string Escape(byte[] bytes, int max) =>
        JsonSerializer.Serialize(Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, max)), Relaxed)
        + (bytes.Length > max ? $"… ({bytes.Length} bytes)" : "");

    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
