using System.Text.Json;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// An OpenAI-format SSE stream: each chunk's JSON is handed on unchanged, noting usage, the served
/// model and the text for metering. Ends at <c>data: [DONE]</c>.
/// </summary>
internal sealed class OpenAIStream(string provider, HttpResponseMessage response, CancellationTokenSource deadline, CancellationToken clientAborted)
    : SseUpstreamStream(provider, response, deadline, clientAborted)
{
    // Each event is one chunk, handed on in this one array: the caller reads it before asking for the next event.
    private readonly StreamChunk[] _chunk = new StreamChunk[1];

    protected override IReadOnlyList<StreamChunk> OnEvent(string eventType, byte[] data)
    {
        if (data.AsSpan().SequenceEqual("[DONE]"u8))
        {
            Done = true;
            return [];
        }
        _chunk[0] = Inspect(data);
        return _chunk;
    }

    protected override IReadOnlyList<StreamChunk> OnEnd() => throw Broken("the stream ended without [DONE]");

    // Read forward once, without a document: every chunk of every answer comes through here, and a non-streaming answer's chunks
    // are parsed again by the assembler. What this keeps: the served model, usage, the text and tool calls (for metering), and
    // whether the chunk carries content (first token) or only usage.
    private StreamChunk Inspect(byte[] data)
    {
        var textBefore = Text.Length;
        try
        {
            var reader = new Utf8JsonReader(data);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                using (JsonDocument.Parse(data)) { } // JSON, but not an object? (throws when it is not JSON at all)
                throw Broken("it sent a chunk that is not a JSON object");
            }
            string? model = null;
            TokenUsage? usage = null;
            var chunk = new ChunkFacts();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject) throw Broken("it sent an error event");
                    reader.Skip();
                }
                else if (ServedModel is null && reader.ValueTextEquals("model"u8)) // the first chunk's (every chunk repeats it)
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String) model = reader.GetString();
                    else reader.Skip();
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        using var document = JsonDocument.ParseValue(ref reader);
                        usage = TokenUsage.FromOpenAI(document.RootElement) ?? usage;
                    }
                    else reader.Skip();
                }
                else if (reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray) ReadChoices(ref reader, data, ref chunk);
                    else reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            if (reader.Read()) throw new JsonException("content after the chunk"); // the reader throws on anything else
            if (ServedModel is null && model is not null) ServedModel = model;
            if (usage is not null) Usage = usage;
            return new StreamChunk(data, IsUsageOnly: !chunk.HasChoices && Usage is not null, chunk.HasContent, chunk.HasToolCall);
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

    private struct ChunkFacts
    {
        public bool HasChoices;
        public bool HasContent;
        public bool HasToolCall;
    }

    private void ReadChoices(ref Utf8JsonReader reader, byte[] data, ref ChunkFacts chunk)
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

    private void ReadDelta(ref Utf8JsonReader reader, byte[] data, ref ChunkFacts chunk)
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
                    Text.Append(System.Text.Encoding.UTF8.GetString(data, start, (int)reader.BytesConsumed - start)); // as written
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
