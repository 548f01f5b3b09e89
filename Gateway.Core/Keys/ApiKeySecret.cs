using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Core.Keys;

/// <summary>Makes and hashes gateway keys: <c>gw-</c> + 32 random bytes, base64url.</summary>
public static class ApiKeySecret
{
    public const string Scheme = "gw-";
    public const int PrefixLength = 11; // "gw-" + 8 characters: enough to tell keys apart, useless to an attacker

    public static (string Key, string Prefix, byte[] Hash) Create()
    {
        var key = Scheme + Base64UrlEncode(RandomNumberGenerator.GetBytes(32));
        return (key, key[..PrefixLength], Hash(key));
    }

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>Hashes without allocating; false when the key is too long to be one of ours.</summary>
    public static bool TryHash(ReadOnlySpan<char> key, Span<byte> hash)
    {
        Span<byte> utf8 = stackalloc byte[128];
        if (!Encoding.UTF8.TryGetBytes(key, utf8, out var written)) return false;
        return SHA256.TryHashData(utf8[..written], hash, out _);
    }

    /// <summary>The lookup slot of a hash: its first 16 bytes (the full hash is compared after).</summary>
    public static UInt128 Slot(ReadOnlySpan<byte> hash) => BinaryPrimitives.ReadUInt128LittleEndian(hash);

    private static string Base64UrlEncode(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
