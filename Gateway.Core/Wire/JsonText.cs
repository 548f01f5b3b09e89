using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Gateway.Core.Wire;

/// <summary>Text read from JSON without a string of its own: every streamed chunk's text goes through here.</summary>
internal static class JsonText
{
    /// <summary>The reader's current string value, unescaped, onto <paramref name="buffer"/>.</summary>
    public static void Append(StringBuilder buffer, ref Utf8JsonReader reader)
    {
        var most = reader.ValueSpan.Length; // UTF-16 units never outnumber the UTF-8 bytes (escaped or not) they come from
        char[]? rented = null;
        var chars = most <= 256 ? stackalloc char[256] : (rented = ArrayPool<char>.Shared.Rent(most));
        try
        {
            buffer.Append(chars[..reader.CopyString(chars)]);
        }
        finally
        {
            if (rented is not null) ArrayPool<char>.Shared.Return(rented);
        }
    }
}
