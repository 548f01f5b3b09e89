using System.Text.Json;
using Gateway.Core.Chat;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// An OpenAI-format SSE stream: each chunk's JSON is handed on unchanged, noting usage, the served
/// model and the text for metering. Ends at <c>data: [DONE]</c>.
/// </summary>
/// <remarks>
/// Given an <paramref name="assembler"/> (a non-streaming request called streaming), the stream adds each chunk to it as it reads
/// the chunk, and the caller does not (<see cref="UpstreamStream.Assembles"/>).
/// </remarks>
internal sealed class OpenAIStream(string provider, HttpResponseMessage response, CancellationTokenSource deadline, CancellationToken clientAborted,
    CompletionAssembler? assembler = null) : SseUpstreamStream(provider, response, deadline, clientAborted)
{
    public override bool Assembles => assembler is not null;

    // Assembled, a chunk's bytes are read once, as they arrive, and not handed on: each event is read into one reused buffer.
    protected override bool KeepsEvents => assembler is null;

    // Relayed, a chunk's bytes are the event's, and nothing here keeps them past the chunk (the envelope is a copy): once the
    // held-back chunks are out, each event is read into the reused buffer too.
    protected override bool ReusesEventsAfterPriming => true;

    // Each event is one chunk, handed on in this one array: the caller reads it before asking for the next event.
    private readonly StreamChunk[] _chunk = new StreamChunk[1];

    protected override IReadOnlyList<StreamChunk> OnEvent(string eventType, ReadOnlyMemory<byte> data)
    {
        if (data.Span.SequenceEqual("[DONE]"u8))
        {
            Done = true;
            return [];
        }
        _chunk[0] = Inspect(data);
        return _chunk;
    }

    protected override IReadOnlyList<StreamChunk> OnEnd() => throw Broken("the stream ended without [DONE]");

    // Read forward once, without a document: every chunk of every answer comes through here. A non-streamed answer's chunks are
    // read by the assembler that joins them, which notes the same facts on the way. What is kept: the served model, usage, the
    // text and tool calls (for metering), and whether the chunk carries content (first token) or only usage.
    private StreamChunk Inspect(ReadOnlyMemory<byte> data)
    {
        var textBefore = Text.Length;
        try
        {
            var chunk = assembler is null ? Read(data.Span) : assembler.Read(data.Span, Text, needModel: ServedModel is null);
            if (!chunk.IsObject)
            {
                using (JsonDocument.Parse(data)) { } // JSON, but not an object? (throws when it is not JSON at all)
                throw Broken("it sent a chunk that is not a JSON object");
            }
            if (chunk.IsError) throw Broken("it sent an error event");
            if (ServedModel is null && chunk.Model is not null) ServedModel = chunk.Model;
            if (chunk.Usage is { } at)
            {
                using var document = JsonDocument.Parse(data[at]);
                Usage = TokenUsage.FromOpenAI(document.RootElement) ?? Usage;
            }
            // Assembled, the chunk's bytes are in the assembler, and its buffer is the next event's: the chunk carries none.
            return new StreamChunk(assembler is null ? data : default, IsUsageOnly: !chunk.HasChoices && Usage is not null, chunk.HasContent, chunk.HasToolCall);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            Text.Length = textBefore;
            throw Broken("it sent a chunk that is not JSON");
        }
        catch (UpstreamStreamException)
        {
            Text.Length = textBefore; // an error event's text is not the answer's
            throw;
        }
    }

    // Every chunk of a stream repeats its envelope (id, model, …): read once, then skipped while the bytes are the same.
    private readonly ChunkEnvelope _envelope = new();

    private ChunkFacts Read(ReadOnlySpan<byte> data)
    {
        var chunk = new ChunkFacts();
        var reader = _envelope.Open(data, out var skipped);
        var atChoices = skipped > 0; // past a repeated envelope: on the choices property
        if (!atChoices && (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)) return chunk;
        var rest = data[skipped..]; // what the reader's positions are relative to
        chunk.IsObject = true;
        var envelope = !atChoices; // no property read so far has an effect the second time (Keep)
        while (atChoices || reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (atChoices || reader.ValueTextEquals("choices"u8))
            {
                if (envelope) _envelope.Keep(data, reader);
                atChoices = envelope = false;
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray) ReadChoices(ref reader, rest, ref chunk);
                else reader.Skip();
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                envelope = false;
                reader.Read();
                chunk.IsError |= reader.TokenType == JsonTokenType.StartObject;
                reader.Skip();
            }
            else if (ServedModel is null && reader.ValueTextEquals("model"u8)) // the first chunk's (every chunk repeats it)
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String) chunk.Model = reader.GetString();
                else reader.Skip();
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                envelope = false;
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                var isObject = reader.TokenType == JsonTokenType.StartObject;
                reader.Skip();
                if (isObject) chunk.Usage = (skipped + start)..(skipped + (int)reader.BytesConsumed);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        if (reader.Read()) throw new JsonException("content after the chunk"); // the reader throws on anything else
        return chunk;
    }

    private void ReadChoices(ref Utf8JsonReader reader, ReadOnlySpan<byte> data, ref ChunkFacts chunk)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            chunk.HasChoices = true;
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isDelta = reader.ValueTextEquals("delta"u8);
                reader.Read();
                if (isDelta && reader.TokenType == JsonTokenType.StartObject) ReadDelta(ref reader, data, ref chunk);
                else reader.Skip();
            }
        }
    }

    private void ReadDelta(ref Utf8JsonReader reader, ReadOnlySpan<byte> data, ref ChunkFacts chunk)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                {
                    Wire.JsonText.Append(Text, ref reader);
                    chunk.HasContent = true;
                }
                else reader.Skip();
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    Text.Append(System.Text.Encoding.UTF8.GetString(data[start..(int)reader.BytesConsumed])); // as written
                    chunk.HasContent = true;
                    chunk.HasToolCall = true;
                }
                else reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }
}
