package dev.electra;

/**
 * {@link Tokenizer#encode}'s result: {@link #batch()} rows of {@link #seqLen()} tokens,
 * row-major, padded with [PAD] to the longest row: the arrays the {@link Session} calls on ids
 * take.
 *
 * <p>Offsets: {@link #offsets()} holds UTF-8 byte offsets, as the library (and HF tokenizers on
 * bytes) counts them. Java strings are UTF-16, so {@link #charOffsets()} (and
 * {@link #charStart}, {@link #charEnd}) give the same spans as {@code char} indices of the
 * strings passed in, ready for {@link String#substring(int, int)}.
 */
public final class Encoding {
    private final int batch;
    private final int seqLen;
    private final int[] ids;
    private final int[] mask;
    private final int[] types;
    private final int[] offsets;
    private final byte[][] first;
    private final byte[][] second;
    private int[] charOffsets;

    Encoding(int[][] r, byte[][] first, byte[][] second) {
        this.ids = r[0];
        this.mask = r[1];
        this.types = r[2];
        this.offsets = r[3];
        this.seqLen = r[4][0];
        this.batch = first.length;
        this.first = first;
        this.second = second;
    }

    /** Rows (texts or pairs). */
    public int batch() { return batch; }

    /** Tokens per row: the longest row's length; shorter rows are padded. */
    public int seqLen() { return seqLen; }

    /** batch*seqLen token ids, row-major (the array itself, not a copy). */
    public int[] ids() { return ids; }

    /** 1 for a token, 0 for padding. */
    public int[] attentionMask() { return mask; }

    /** 0 for the first text's tokens, 1 for the second's. */
    public int[] tokenTypeIds() { return types; }

    /**
     * 2*batch*seqLen UTF-8 byte offsets: the start and end of each token in its text's UTF-8
     * form (the second text's where the token type is 1); 0, 0 for special and padding tokens.
     */
    public int[] offsets() { return offsets; }

    /** Byte offset of the first byte of token {@code pos} of {@code row}. */
    public int start(int row, int pos) { return offsets[2 * index(row, pos)]; }

    /** Byte offset past the last byte of token {@code pos} of {@code row}. */
    public int end(int row, int pos) { return offsets[2 * index(row, pos) + 1]; }

    /**
     * {@link #offsets()} as {@code char} indices into the Java strings encoded (a token inside a
     * surrogate pair, such as one of an emoji's bytes, spans the whole pair); 0, 0 for special and
     * padding tokens.
     */
    public synchronized int[] charOffsets() {
        if (charOffsets == null) {
            int[] out = new int[offsets.length];
            for (int r = 0; r < batch; r++) {
                int[] a = Utf8.charIndex(first[r]);
                int[] b = second == null ? null : Utf8.charIndex(second[r]);
                for (int j = 0; j < seqLen; j++) {
                    int k = r * seqLen + j;
                    int[] map = types[k] == 1 && b != null ? b : a;
                    out[2 * k] = Utf8.at(map, offsets[2 * k]);
                    out[2 * k + 1] = Utf8.at(map, offsets[2 * k + 1]);
                }
            }
            charOffsets = out;
        }
        return charOffsets;
    }

    /** {@code char} index of token {@code pos} of {@code row} in its string. */
    public int charStart(int row, int pos) { return charOffsets()[2 * index(row, pos)]; }

    /** {@code char} index past token {@code pos} of {@code row} in its string. */
    public int charEnd(int row, int pos) { return charOffsets()[2 * index(row, pos) + 1]; }

    /** The ids of one row, padding included (a copy). */
    public int[] row(int row) {
        int[] out = new int[seqLen];
        System.arraycopy(ids, index(row, 0), out, 0, seqLen);
        return out;
    }

    /** The number of tokens of {@code row}, padding excluded. */
    public int length(int row) {
        int n = 0;
        for (int j = 0; j < seqLen; j++) {
            n += mask[index(row, j)];
        }
        return n;
    }

    private int index(int row, int pos) {
        if (row < 0 || row >= batch || pos < 0 || pos >= seqLen) {
            throw new IndexOutOfBoundsException("token " + pos + " of row " + row + " (" + batch + " rows of " + seqLen + ")");
        }
        return row * seqLen + pos;
    }
}
