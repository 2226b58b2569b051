package dev.electra;

/** What a {@link Tokenizer} holds: its vocabulary size and special token ids. */
public final class TokenizerInfo {
    private final int[] v;

    TokenizerInfo(int[] v) {
        this.v = v;
    }

    /** Number of ids (a model's vocabulary must be at least this). */
    public int vocabSize() { return v[0]; }

    public int padId() { return v[1]; }

    public int unkId() { return v[2]; }

    public int clsId() { return v[3]; }

    public int sepId() { return v[4]; }

    public int maskId() { return v[5]; }

    @Override
    public String toString() {
        return "TokenizerInfo{vocabSize=" + vocabSize() + ", pad=" + padId() + ", unk=" + unkId() + ", cls=" + clsId()
                + ", sep=" + sepId() + ", mask=" + maskId() + "}";
    }
}
