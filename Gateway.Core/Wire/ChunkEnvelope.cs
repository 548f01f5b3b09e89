using System.Text.Json;

namespace Gateway.Core.Wire;

/// <summary>
/// What the chunks of one stream repeat before their <c>choices</c>: OpenAI's <c>id</c>, <c>object</c>, <c>created</c>,
/// <c>model</c> and <c>system_fingerprint</c> are the same bytes in every chunk of an answer, and more than half of a token's
/// chunk. A reader keeps the envelope of a chunk it read whole, with the JSON reader's state at the end of it; a later chunk that
/// begins with the same bytes is read from its <c>choices</c> on (<see cref="Open"/>), as if its envelope had been read again.
/// </summary>
/// <remarks>
/// Skipping is only right for an envelope whose reading has no effect the second time, so a reader keeps one only when nothing
/// before <c>choices</c> was <c>usage</c> or <c>error</c> (those are facts of each chunk). Fields a reader keeps the first value of
/// (the served model, the top-level fields of an assembled answer) were kept from the first chunk with those bytes. A chunk whose
/// bytes differ anywhere in the envelope is read whole, and its envelope is kept instead.
/// </remarks>
internal sealed class ChunkEnvelope
{
    // An envelope longer than this is not kept: no provider's is near it, and the copy would outweigh the reading saved.
    private const int KeptAtMost = 1024;

    private byte[] _bytes = [];
    private int _length;
    private JsonReaderState _state;

    /// <summary>
    /// A reader for <paramref name="chunk"/>: past the envelope (on the <c>choices</c> value, which the next read reaches) when
    /// the chunk repeats the envelope kept, with <paramref name="skipped"/> its length; else from the start, with 0. Positions the
    /// reader gives are then relative to <c>chunk[skipped..]</c>.
    /// </summary>
    public Utf8JsonReader Open(ReadOnlySpan<byte> chunk, out int skipped)
    {
        skipped = _length > 0 && chunk.Length > _length && chunk[.._length].SequenceEqual(_bytes.AsSpan(0, _length)) ? _length : 0;
        return skipped > 0 ? new Utf8JsonReader(chunk[skipped..], isFinalBlock: true, _state) : new Utf8JsonReader(chunk);
    }

    /// <summary>Keeps the envelope of a chunk read from its start (<paramref name="chunk"/>), with the reader on <c>choices</c>' name.</summary>
    public void Keep(ReadOnlySpan<byte> chunk, in Utf8JsonReader reader)
    {
        var length = (int)reader.BytesConsumed;
        if (length > KeptAtMost)
        {
            _length = 0;
            return;
        }
        if (_bytes.Length < length) _bytes = new byte[length];
        chunk[..length].CopyTo(_bytes);
        _length = length;
        _state = reader.CurrentState;
    }
}
