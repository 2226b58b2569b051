package dev.electra;

/** One candidate of {@link Session#fillMask}. */
public final class TokenScore {
    private final int id;
    private final float score;
    private final String token;

    TokenScore(int id, float score, String token) {
        this.id = id;
        this.score = score;
        this.token = token;
    }

    /** The token id. */
    public int id() { return id; }

    /** Its probability at that position. */
    public float score() { return score; }

    /** The vocabulary entry of {@link #id()} (null for an id past the tokenizer's vocabulary). */
    public String token() { return token; }

    @Override
    public String toString() {
        return String.format("%s (%d) %.4f", token, id, score);
    }
}
