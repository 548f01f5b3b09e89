using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Core.Logging;

/// <summary>
/// Removes personal data and secrets from text before it reaches a log sink: e-mail addresses, phone numbers,
/// payment card numbers (only digit runs that pass the Luhn check), national ids (US SSN, UK National Insurance
/// number) and API-key-like strings (OpenAI/Anthropic <c>sk-…</c>, this gateway's <c>gw-…</c>, Google <c>AIza…</c>,
/// AWS <c>AKIA…</c>, GitHub, Slack, bearer tokens, and any long unbroken token of key characters), JSON Web Tokens, and the
/// value after a <c>password</c>, <c>secret</c>, <c>token</c> or <c>api_key</c> name (<c>password: hunter2</c>).
/// </summary>
public static partial class Redactor
{
    public static string Redact(string text)
    {
        if (string.IsNullOrEmpty(text)) return text;
        text = Jwt().Replace(text, "[REDACTED:token]");
        text = SecretValue().Replace(text, m => m.Groups["name"].Value + m.Groups["sep"].Value + "[REDACTED:secret]");
        text = ApiKey().Replace(text, "[REDACTED:key]");
        text = Email().Replace(text, "[REDACTED:email]");
        text = Ssn().Replace(text, "[REDACTED:national-id]");
        text = Nino().Replace(text, "[REDACTED:national-id]");
        text = CardCandidate().Replace(text, m => Luhn(m.Value) ? "[REDACTED:card]" : m.Value);
        text = Phone().Replace(text, m => m.Value.Count(char.IsAsciiDigit) >= 9 ? "[REDACTED:phone]" : m.Value);
        return text;
    }

    /// <summary>Only the API-key-like strings of <see cref="Redact"/> (for texts where e-mail addresses and numbers are wanted).</summary>
    public static string RedactKeys(string text) => string.IsNullOrEmpty(text) ? text : ApiKey().Replace(text, "[REDACTED:key]");

    /// <summary>The Luhn checksum over the digits of <paramref name="candidate"/> (separators ignored).</summary>
    internal static bool Luhn(string candidate)
    {
        var digits = new StringBuilder(candidate.Length);
        foreach (var c in candidate) if (char.IsAsciiDigit(c)) digits.Append(c);
        if (digits.Length is < 13 or > 19) return false;
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 1 && (d *= 2) > 9) d -= 9;
            sum += d;
        }
        return sum % 10 == 0;
    }

    private const RegexOptions Options = RegexOptions.CultureInvariant | RegexOptions.NonBacktracking;

    [GeneratedRegex(@"(?i)\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|gw-[A-Za-z0-9_\-]{20,}|gwm-[A-Za-z0-9_\-]{20,}|AIza[0-9A-Za-z_\-]{30,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9\-]{10,})|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{16,}|\b[A-Za-z0-9_\-]{40,}\b", Options)]
    private static partial Regex ApiKey();

    // A JSON Web Token: three base64url parts, the first two starting with a JSON object ("eyJ").
    [GeneratedRegex(@"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", Options)]
    private static partial Regex Jwt();

    // "password: hunter2", "secret=…", "api_key is …", "token": "…": the name stays, the value (whatever its length or
    // characters, up to the next space or quote) goes.
    [GeneratedRegex(@"(?i)(?<name>\b(?:[A-Za-z0-9]+_)*(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_\- ]?key|access[_\- ]?key|private[_\- ]?key)\b""?)(?<sep>\s*[:=]\s*""?|\s+is\s+""?)[^\s""',;]+", Options)]
    private static partial Regex SecretValue();

    [GeneratedRegex(@"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", Options)]
    private static partial Regex Email();

    [GeneratedRegex(@"\b\d{3}-\d{2}-\d{4}\b", Options)]
    private static partial Regex Ssn();

    [GeneratedRegex(@"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b", Options)]
    private static partial Regex Nino();

    // 13–19 digits, optionally grouped by single spaces or dashes; the Luhn check decides.
    [GeneratedRegex(@"\b\d(?:[ \-]?\d){12,18}\b", Options)]
    private static partial Regex CardCandidate();

    // International (+country) or grouped national numbers: 9–15 digits with separators, at least one separator or a leading +.
    [GeneratedRegex(@"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?)?\d{2,4}[\s.\-]\d{2,4}[\s.\-]?\d{2,5}\b|\+\d{9,15}\b", Options)]
    private static partial Regex Phone();
}
