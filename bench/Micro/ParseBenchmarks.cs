using System.Text;
using BenchmarkDotNet.Attributes;
using Gateway.Core;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Micro;

/// <summary>
/// Reading a chat request as the endpoint does (<see cref="ChatRequestParser.Parse"/>: the JSON into the request type, then the
/// FluentValidation rules), on the body the load rows send (bench/chat.lua) and on one with a system prompt, a tool and its call.
/// </summary>
public class ParseBenchmarks
{
    private static readonly byte[] Short = Encoding.UTF8.GetBytes(
        """{"model":"bench","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}""");

    private static readonly byte[] WithTools = Encoding.UTF8.GetBytes("""
        {"model":"bench","temperature":0.2,"max_completion_tokens":256,"stream":false,
         "messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Weather in Oslo?"},
           {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
           {"role":"tool","tool_call_id":"call_1","content":"4 degrees, rain"}],
         "tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}
        """);

    private readonly ChatRequestParser _parser = new(Options.Create(new GatewayOptions()));
    private readonly ChatCompletionRequestValidator _validator = new(new GatewayOptions());
    private ChatCompletionRequest _parsed = null!;

    [GlobalSetup]
    public void Setup() => _parsed = _parser.Parse(Short).Value!;

    [Benchmark(Description = "parse: the load rows' request, JSON and rules")]
    public ParseResult ParseShort() => _parser.Parse(Short);

    [Benchmark(Description = "parse: its rules alone")]
    public bool ValidateShort() => _validator.Validate(_parsed).IsValid;

    [Benchmark(Description = "parse: four messages, a tool and its call")]
    public ParseResult ParseWithTools() => _parser.Parse(WithTools);
}
