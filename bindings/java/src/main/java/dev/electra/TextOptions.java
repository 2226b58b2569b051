package dev.electra;

/**
 * How the {@link Session} text calls run ({@code electra_text_params}, plus the tokenizer).
 * Every default is the library's; setters return {@code this}.
 */
public final class TextOptions {
    private int batchSize;
    private int maxLength;
    private Pooling pooling = Pooling.MEAN;
    private boolean normalize;
    private Tokenizer tokenizer;

    /**
     * Texts per forward pass (0, the default: 32). Texts are sorted by length and padded per
     * batch; results do not depend on it.
     */
    public TextOptions batchSize(int batchSize) {
        if (batchSize < 0) {
            throw new IllegalArgumentException("batchSize must be 0 (the default) or positive, not " + batchSize);
        }
        this.batchSize = batchSize;
        return this;
    }

    /**
     * Cut each text to this many tokens, [CLS]/[SEP] included (0, the default: the model's
     * maxPositionEmbeddings; more than that is {@link Status#INVALID_ARGUMENT}).
     */
    public TextOptions maxLength(int maxLength) {
        if (maxLength < 0) {
            throw new IllegalArgumentException("maxLength must be 0 (the model's) or positive, not " + maxLength);
        }
        this.maxLength = maxLength;
        return this;
    }

    /** Embeddings: {@link Pooling#MEAN} (the default) or {@link Pooling#CLS}. */
    public TextOptions pooling(Pooling pooling) {
        this.pooling = pooling == null ? Pooling.MEAN : pooling;
        return this;
    }

    /** Embeddings: scale each to unit length (cosine similarity is then a dot product). Default false. */
    public TextOptions normalize(boolean normalize) {
        this.normalize = normalize;
        return this;
    }

    /**
     * The tokenizer to use; null (the default): the model's own (the tokenizer.json or
     * vocab.txt beside its weights; a model without one is {@link Status#UNSUPPORTED}).
     */
    public TextOptions tokenizer(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
        return this;
    }

    public int batchSize() { return batchSize; }

    public int maxLength() { return maxLength; }

    public Pooling pooling() { return pooling; }

    public boolean normalize() { return normalize; }

    public Tokenizer tokenizer() { return tokenizer; }

    /** {batchSize, maxLength, pooling, normalize} for the native side. */
    static int[] params(TextOptions o) {
        if (o == null) {
            return null;
        }
        return new int[] {o.batchSize, o.maxLength, o.pooling.code, o.normalize ? 1 : 0};
    }
}
