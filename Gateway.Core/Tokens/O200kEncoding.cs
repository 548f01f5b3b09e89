using System.Buffers;
using System.Buffers.Text;
using System.IO.Compression;
using System.Reflection;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Core.Tokens;

/// <summary>
/// OpenAI's o200k_base byte-pair encoding, for counting only, in ≈ 4 MB: the vocabulary (Microsoft.ML.Tokenizers.Data.O200kBase's
/// file, one base64 token per line, rank = line) is kept as one byte array, its offsets, and an open-addressing table of
/// ranks. Microsoft.ML.Tokenizers' own encoder holds the same vocabulary in dictionaries of separate arrays and strings, ≈ 40 MB
/// of heap (half of it in the large-object heap) in every instance that counts a prompt; its counts are the reference this
/// one is tested against (TokenCounterTests). The algorithm is tiktoken's: the text is cut by the encoding's pattern, each
/// piece is one token when the vocabulary holds it, otherwise its bytes are merged pair by pair, lowest rank first.
/// </summary>
internal sealed partial class O200kEncoding
{
    private const string Resource = "o200k_base.tiktoken.deflate";

    // tiktoken's o200k_base pattern (the same as Microsoft.ML.Tokenizers' O200kBase pre-tokenizer).
    [GeneratedRegex(
        """[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
        RegexOptions.CultureInvariant)]
    private static partial Regex Pieces();

    // The encoding's special tokens: in a text, each counts as one token, as Microsoft.ML.Tokenizers counts them.
    private static readonly string[] Specials = ["<|endoftext|>", "<|endofprompt|>"];

    private readonly byte[] _bytes;   // every token's bytes, in rank order
    private readonly int[] _starts;   // token r is _bytes[_starts[r].._starts[r + 1]]
    private readonly int[] _slots;    // rank + 1 by hash of the bytes; 0: empty
    private readonly int _mask;

    private O200kEncoding(byte[] bytes, int[] starts, int count)
    {
        _bytes = bytes;
        _starts = starts;
        var size = (int)BitOperations.RoundUpToPowerOf2((uint)count * 2);
        _slots = new int[size];
        _mask = size - 1;
        for (var rank = 0; rank < count; rank++)
        {
            var slot = Hash(Token(rank)) & _mask;
            while (_slots[slot] != 0) slot = (slot + 1) & _mask;
            _slots[slot] = rank + 1;
        }
    }

    public static O200kEncoding Load()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.O200kBase");
        using var stream = assembly.GetManifestResourceStream(Resource)
            ?? throw new InvalidOperationException($"{Resource} is missing from {assembly.FullName}");
        // Read as bytes and decoded in two passes (sizes, then tokens) into arrays of their final size: a string per line
        // and growing lists made garbage at the first count that the GC then kept committed.
        using var text = new MemoryStream();
        using (var inflate = new DeflateStream(stream, CompressionMode.Decompress)) inflate.CopyTo(text);
        var file = text.GetBuffer().AsSpan(0, (int)text.Length);
        int count = 0, size = 0;
        foreach (var line in new TokenLines(file))
        {
            count++;
            size += Base64.GetMaxDecodedFromUtf8Length(line.Length) - (line.EndsWith("=="u8) ? 2 : line.EndsWith("="u8) ? 1 : 0);
        }
        var bytes = new byte[size];
        var starts = new int[count + 1];
        int rank = 0, at = 0;
        foreach (var line in new TokenLines(file))
        {
            if (Base64.DecodeFromUtf8(line, bytes.AsSpan(at), out _, out var written) != OperationStatus.Done)
                throw new InvalidDataException($"{Resource}: token {rank} is not base64");
            starts[rank++] = at;
            at += written;
        }
        starts[count] = at;
        return new O200kEncoding(bytes, starts, count);
    }

    // The file's token lines: base64, one per line; blank lines and the "Capacity:" header skipped.
    private ref struct TokenLines
    {
        private ReadOnlySpan<byte> _rest;

        public TokenLines(ReadOnlySpan<byte> file) => _rest = file;

        public ReadOnlySpan<byte> Current { get; private set; }

        public readonly TokenLines GetEnumerator() => this;

        public bool MoveNext()
        {
            while (!_rest.IsEmpty)
            {
                var end = _rest.IndexOf((byte)'\n');
                var line = end < 0 ? _rest : _rest[..end];
                _rest = end < 0 ? default : _rest[(end + 1)..];
                if (line.EndsWith("\r"u8)) line = line[..^1];
                if (line.IsEmpty || line.StartsWith("Capacity:"u8)) continue;
                Current = line;
                return true;
            }
            return false;
        }
    }

    /// <summary>How many tokens the text encodes to.</summary>
    public int Count(ReadOnlySpan<char> text)
    {
        var total = 0;
        while (!text.IsEmpty)
        {
            var (at, length) = NextSpecial(text);
            total += CountOrdinary(text[..at]);
            if (length == 0) break;
            total++;
            text = text[(at + length)..];
        }
        return total;
    }

    private static (int At, int Length) NextSpecial(ReadOnlySpan<char> text)
    {
        var first = (At: text.Length, Length: 0);
        var from = text.IndexOf("<|", StringComparison.Ordinal);
        if (from < 0) return first;
        foreach (var special in Specials)
        {
            var at = text[from..].IndexOf(special, StringComparison.Ordinal);
            if (at >= 0 && from + at < first.At) first = (from + at, special.Length);
        }
        return first;
    }

    private int CountOrdinary(ReadOnlySpan<char> text)
    {
        var total = 0;
        byte[]? rented = null;
        Span<byte> buffer = stackalloc byte[1024];
        try
        {
            foreach (var match in Pieces().EnumerateMatches(text))
            {
                var piece = text.Slice(match.Index, match.Length);
                var needed = Encoding.UTF8.GetMaxByteCount(piece.Length);
                if (needed > buffer.Length)
                {
                    if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
                    buffer = rented = ArrayPool<byte>.Shared.Rent(needed);
                }
                var length = Encoding.UTF8.GetBytes(piece, buffer);
                total += CountPiece(buffer[..length]);
            }
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
        return total;
    }

    // tiktoken's byte-pair merge: parts[i] starts a part; ranks[i] is the rank of parts i and i + 1 joined (int.MaxValue: not
    // in the vocabulary). The lowest-ranked pair is joined until none is left; the parts left are the tokens.
    private int CountPiece(ReadOnlySpan<byte> piece)
    {
        if (piece.Length == 1 || Rank(piece) >= 0) return 1;
        var n = piece.Length + 1;
        int[]? rented = null;
        var scratch = n * 2 <= 512 ? stackalloc int[n * 2] : (rented = ArrayPool<int>.Shared.Rent(n * 2)).AsSpan(0, n * 2);
        try
        {
            var parts = scratch[..n];
            var ranks = scratch[n..];
            for (var i = 0; i < n; i++) parts[i] = i;
            for (var i = 0; i < n - 2; i++) ranks[i] = RankOrMax(piece[i..(i + 2)]);
            ranks[n - 2] = ranks[n - 1] = int.MaxValue;
            var count = n; // parts in use, including the end marker
            while (true)
            {
                var min = int.MaxValue;
                var at = -1;
                for (var i = 0; i < count - 1; i++)
                {
                    if (ranks[i] < min)
                    {
                        min = ranks[i];
                        at = i;
                    }
                }
                if (at < 0) break;
                // Join parts at and at + 1 (at + 1's start goes); the pairs that change are the one at at and the one before.
                parts[(at + 2)..count].CopyTo(parts[(at + 1)..]);
                ranks[(at + 2)..count].CopyTo(ranks[(at + 1)..]);
                count--;
                ranks[at] = PairRank(piece, parts, count, at);
                if (at > 0) ranks[at - 1] = PairRank(piece, parts, count, at - 1);
            }
            return count - 1;
        }
        finally
        {
            if (rented is not null) ArrayPool<int>.Shared.Return(rented);
        }
    }

    private int PairRank(ReadOnlySpan<byte> piece, Span<int> parts, int count, int i) =>
        i + 2 < count ? RankOrMax(piece[parts[i]..parts[i + 2]]) : int.MaxValue;

    private int RankOrMax(ReadOnlySpan<byte> bytes)
    {
        var rank = Rank(bytes);
        return rank < 0 ? int.MaxValue : rank;
    }

    private int Rank(ReadOnlySpan<byte> bytes)
    {
        for (var slot = Hash(bytes) & _mask; ; slot = (slot + 1) & _mask)
        {
            var entry = _slots[slot];
            if (entry == 0) return -1;
            if (Token(entry - 1).SequenceEqual(bytes)) return entry - 1;
        }
    }

    private ReadOnlySpan<byte> Token(int rank) => _bytes.AsSpan(_starts[rank], _starts[rank + 1] - _starts[rank]);

    private static int Hash(ReadOnlySpan<byte> bytes)
    {
        // FNV-1a: stable, and fast on the short spans tokens are.
        var hash = 2166136261u;
        foreach (var b in bytes) hash = (hash ^ b) * 16777619u;
        return (int)(hash ^ (hash >> 15));
    }
}
