package dev.electra;

/** One word of {@link Session#detectText}: its span in the text and the probability that it was replaced. */
public final class WordScore {
    private final int start;
    private final int end;
    private final int charStart;
    private final int charEnd;
    private final float score;
    private final String word;

    WordScore(int start, int end, int charStart, int charEnd, float score, String word) {
        this.start = start;
        this.end = end;
        this.charStart = charStart;
        this.charEnd = charEnd;
        this.score = score;
        this.word = word;
    }

    /** UTF-8 byte offset of the word's first byte in the text. */
    public int start() { return start; }

    /** UTF-8 byte offset past its last byte. */
    public int end() { return end; }

    /** {@code char} index of the word in the Java string ({@code text.substring(charStart(), charEnd())} is {@link #word()}). */
    public int charStart() { return charStart; }

    /** {@code char} index past the word in the Java string. */
    public int charEnd() { return charEnd; }

    /** Probability that the word was replaced (the largest of its WordPiece pieces'), in [0, 1]. */
    public float score() { return score; }

    /** The word as it stands in the text. */
    public String word() { return word; }

    @Override
    public String toString() {
        return String.format("%s [%d, %d) %.4f", word, start, end, score);
    }
}
