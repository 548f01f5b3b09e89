using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Gateway.Api.Endpoints;

namespace Gateway.Tests.Api;

/// <summary>
/// The one writer of server-sent events: an event goes into the response's pipe with one reservation when it fits, and the
/// bytes must be the same whichever way it was written, wherever the pipe's buffers end.
/// </summary>
public sealed class ServerSentEventsWriteTests
{
    public static TheoryData<string?, int> Events => new()
    {
        { null, 1 },
        { null, 250 },
        { "response.output_text.delta", 250 },
        { "ünïcödé-名前", 40 },
        { null, 4_000 }, // just under one reservation's limit with its framing
        { null, 4_088 }, // exactly at it
        { "message_delta", 9_000 }, // over it: written piece by piece
    };

    [Theory]
    [MemberData(nameof(Events))]
    public void An_Event_IsItsNameLine_ItsDataLine_AndABlankLine(string? name, int size)
    {
        var data = Data(size, seed: size);
        var output = new ArrayBufferWriter<byte>();

        ServerSentEvents.Write(output, data, name);

        Assert.Equal(Expected(name, data), output.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task Events_WrittenBackToBack_AcrossThePipesBuffers_ArriveWhole_AndInOrder()
    {
        // Small segments, so events start near a buffer's end and a reservation has to move to a new one.
        var pipe = new Pipe(new PipeOptions(minimumSegmentSize: 256, pauseWriterThreshold: 0));
        var expected = new MemoryStream();
        for (var i = 0; i < 300; i++)
        {
            var name = i % 3 == 0 ? "event-" + i : null;
            var data = Data(1 + i * 37 % 5_000, seed: i);
            ServerSentEvents.Write(pipe.Writer, data, name);
            expected.Write(Expected(name, data));
            if (i % 17 == 0) await pipe.Writer.FlushAsync();
        }
        await pipe.Writer.CompleteAsync();

        var written = new MemoryStream();
        await pipe.Reader.CopyToAsync(written);
        Assert.Equal(expected.ToArray(), written.ToArray());
    }

    private static byte[] Expected(string? name, byte[] data) =>
        [.. name is null ? [] : Encoding.UTF8.GetBytes($"event: {name}\n"), .. "data: "u8, .. data, .. "\n\n"u8];

    // JSON-like bytes with no newline, different for every event so a misplaced copy shows.
    private static byte[] Data(int size, int seed)
    {
        var random = new Random(seed);
        var data = new byte[size];
        for (var i = 0; i < size; i++) data[i] = (byte)random.Next(0x20, 0x7F);
        return data;
    }
}
