using Gateway.Core.Catalog;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>What an adapter needs for one attempt: the client's request and the chosen model.</summary>
public sealed record UpstreamCall(Guid RequestId, ChatCompletionRequest Request, ModelRoute Route);
