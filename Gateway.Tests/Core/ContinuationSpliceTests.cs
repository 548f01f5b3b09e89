using Gateway.Core.Chat;

namespace Gateway.Tests.Core;

/// <summary>The client never reads the partial answer twice, however a continuation's pieces fall.</summary>
public sealed class ContinuationSpliceTests
{
    private static string Splice(string partial, params string[] pieces)
    {
        var splice = new ContinuationSplice(partial);
        var sent = string.Concat(pieces.Select(splice.Next));
        Assert.Equal(partial + sent, splice.ClientText);
        return sent;
    }

    [Fact]
    public void ANativeContinuation_PassesThrough() =>
        Assert.Equal(" the fake upstream.", Splice("Hello from", " the", " fake", " upstream."));

    [Fact]
    public void ARepetitionSplitAcrossPieces_IsDropped() =>
        Assert.Equal(" the fake upstream.", Splice("Hello from", "Hel", "lo", " fr", "om the", " fake upstream."));

    [Fact]
    public void ARepetitionEndingExactlyAtAPieceBoundary_IsDropped() =>
        Assert.Equal(" the end.", Splice("Hello from", "Hello from", " the end."));

    [Fact]
    public void TextThatOnlyBeganLikeTheAnswer_IsReleasedWhole() =>
        Assert.Equal("Help is here.", Splice("Hello from", "Hel", "p is here."));

    [Fact]
    public void AContinuationThatEndsWhileRepeating_AddsNothing() =>
        Assert.Equal("", Splice("Hello from the", "Hello", " from"));

    [Fact]
    public void AfterTrailingWhitespace_TheContinuationsLeadingWhitespaceIsDropped() =>
        Assert.Equal("Claude.", Splice("Hello from ", " ", "Claude."));

    [Fact]
    public void TrailingWhitespaceSaidAgainAcrossPieces_IsDroppedOnce() =>
        Assert.Equal("Next.", Splice("End.\n\n", "\n", "\nNext."));

    [Fact]
    public void AContinuationAfterANewline_KeepsItsIndentation() =>
        // DeepSeek continues the untrimmed prefix: its leading spaces are the code's indentation, not a repetition.
        Assert.Equal("    return 1", Splice("def f():\n", "    return 1"));

    [Fact]
    public void AContinuationOfATrimmedPrefill_KeepsItsIndentation() =>
        // Anthropic continued "def f():" (trailing newline trimmed): it says the newline again, then the indentation.
        Assert.Equal("    return 1", Splice("def f():\n", "\n", "    return 1"));

    [Fact]
    public void ARepetitionWithoutTheTrailingSpace_DoesNotDoubleIt() =>
        Assert.Equal("the end.", Splice("Hello from ", "Hello from", " the end."));

    [Fact]
    public void EmptyPieces_ChangeNothing() =>
        Assert.Equal(" x", Splice("ab", "", " x", ""));
}
