using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Responses;

/// <summary>Settings of the Responses API's stored responses (section <c>Gateway:Responses</c>).</summary>
public sealed class ResponsesOptions
{
    public const string SectionName = "Gateway:Responses";

    /// <summary>Days a stored response stays readable (and continuable by <c>previous_response_id</c>); OpenAI keeps them 30 days.</summary>
    [Range(1, 3650)]
    public int RetentionDays { get; set; } = 30;
}
