using System.Buffers;

namespace Gateway.Api.Endpoints;

/// <summary>
/// The one writer of server-sent events in the gateway: a <c>data:</c> line and the blank line that ends the event, written straight
/// into the response's pipe (the chunks are JSON already; see README "Dependencies" for why not <c>TypedResults.ServerSentEvents</c>).
/// </summary>
internal static class ServerSentEvents
{
    /// <summary>One unnamed event of one line (JSON holds no raw newline).</summary>
    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<byte> data)
    {
        output.Write("data: "u8);
        output.Write(data);
        output.Write("\n\n"u8);
    }

}
