using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace Gateway.Core.Guards;

/// <summary>
/// Folds text so that trivial obfuscation reads as plain Latin letters before the injection patterns see it.
/// </summary>
/// <remarks>
/// The gateway runs with <c>InvariantGlobalization</c>, where <see cref="string.Normalize(NormalizationForm)"/> returns
/// its input unchanged, so NFKC is not available. This folds what NFKC would for the characters obfuscators use
/// (fullwidth forms, mathematical alphanumerics, circled and squared letters, ligatures, letter-like symbols) and more
/// that NFKC leaves alone: format characters (zero-width spaces and joiners, soft hyphens, bidi controls) and
/// combining marks are dropped, accented Latin letters lose their accents, and Cyrillic, Greek and small-capital
/// letters that look Latin become Latin. The result is only ever matched, never shown or sent.
/// </remarks>
internal static class InjectionText
{
    private static readonly FrozenDictionary<char, char> Lookalikes = Pairs(
        // Latin-1 and Latin Extended-A letters with diacritics (ligatures such as Æ and Œ are kept).
        "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïðñòóôõöøùúûüýÿ"
        + "ĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĴĵĶķĸĹĺĻļĽľĿŀŁłŃńŅņŇňŉŊŋŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧ"
        + "ŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſ"
        // Cyrillic and Greek letters that look Latin.
        + "аеёкморсухіїјѕԁɡӏһԛԝАВЕКМНОРСТХУІЈЅ"
        + "αβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"
        // Small capitals and letter-like symbols.
        + "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ"
        + "ℂℊℋℌℍℎℐℑℒℓℕℙℚℛℜℝℤℨℬℭℯℰℱℳℴℹ",
        "AAAAAACEEEEIIIIDNOOOOOOUUUUYaaaaaaceeeeiiiidnoooooouuuuyy"
        + "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiJjKkkLlLlLlLlLlNnNnNnnNnOoOoOoRrRrRrSsSsSsSsTtTtTt"
        + "UuUuUuUuUuUuWwYyYZzZzZzs"
        + "aeekmopcyxiijsdglhqwABEKMHOPCTXYIJS"
        + "abeikvoptuxABEZHIKMNOPTYX"
        + "abcdefghijklmnoprstuvwyz"
        + "CgHHHhIILlNPQRRRZZBCeEFMoi");

    /// <summary>The text as the patterns see it; ASCII text is returned as it is (nothing to fold).</summary>
    public static string Fold(string text)
    {
        if (Ascii.IsValid(text)) return text;
        var folded = new StringBuilder(text.Length);
        Span<char> utf16 = stackalloc char[2];
        foreach (var rune in text.EnumerateRunes()) // lone surrogates arrive as U+FFFD
        {
            var category = Rune.GetUnicodeCategory(rune);
            if (category is UnicodeCategory.Format or UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark) continue;
            var cp = rune.Value;
            switch (cp)
            {
                case >= 0xFF01 and <= 0xFF5E: // fullwidth ASCII
                    folded.Append((char)(cp - 0xFEE0));
                    continue;
                case >= 0x1D400 and <= 0x1D6A3: // mathematical letters: 13 alphabets of A–Z a–z (bold, italic, script, fraktur…)
                    folded.Append(Letter((cp - 0x1D400) % 52));
                    continue;
                case >= 0x1D7CE and <= 0x1D7FF: // mathematical digits: 5 sets of 0–9
                    folded.Append((char)('0' + (cp - 0x1D7CE) % 10));
                    continue;
                case >= 0x249C and <= 0x24B5: // parenthesized small letters
                    folded.Append((char)('a' + cp - 0x249C));
                    continue;
                case >= 0x24B6 and <= 0x24E9: // circled capital, then small, letters
                    folded.Append(Letter(cp - 0x24B6));
                    continue;
                case >= 0x1F130 and <= 0x1F189: // squared, negative circled and negative squared capitals
                    folded.Append((char)('A' + (cp - 0x1F130) % 26));
                    continue;
                case >= 0x1F1E6 and <= 0x1F1FF: // regional indicator letters
                    folded.Append((char)('A' + cp - 0x1F1E6));
                    continue;
                case >= 0xFB00 and <= 0xFB06: // ligatures ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ
                    folded.Append(Ligatures[cp - 0xFB00]);
                    continue;
            }
            if (cp <= char.MaxValue && Lookalikes.TryGetValue((char)cp, out var latin))
            {
                folded.Append(latin);
                continue;
            }
            folded.Append(utf16[..rune.EncodeToUtf16(utf16)]);
        }
        return folded.ToString();
    }

    private static readonly string[] Ligatures = ["ff", "fi", "fl", "ffi", "ffl", "st", "st"];

    private static char Letter(int index) => (char)(index < 26 ? 'A' + index : 'a' + index - 26);

    private static FrozenDictionary<char, char> Pairs(string from, string to)
    {
        if (from.Length != to.Length) throw new InvalidOperationException($"Look-alike table: {from.Length} characters map to {to.Length}.");
        return from.Zip(to).ToFrozenDictionary(p => p.First, p => p.Second);
    }
}
