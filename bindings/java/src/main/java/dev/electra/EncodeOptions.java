package dev.electra;

/** How {@link Tokenizer#encode(String[], EncodeOptions)} encodes ({@code electra_encode_params}). */
public final class EncodeOptions {
    private boolean addSpecialTokens = true;
    private int maxLength;

    /** Add [CLS] and [SEP] ([CLS] a [SEP], [CLS] a [SEP] b [SEP]); the default: true. */
    public EncodeOptions addSpecialTokens(boolean add) {
        this.addSpecialTokens = add;
        return this;
    }

    /**
     * Cut each row to at most this many tokens, special tokens included (pairs: the longer text
     * first). 0, the default: no limit.
     */
    public EncodeOptions maxLength(int maxLength) {
        if (maxLength < 0) {
            throw new IllegalArgumentException("maxLength must be 0 (no limit) or positive, not " + maxLength);
        }
        this.maxLength = maxLength;
        return this;
    }

    public boolean addSpecialTokens() { return addSpecialTokens; }

    public int maxLength() { return maxLength; }
}
