package dev.electra;

/** How a sentence embedding pools the last hidden states ({@code ELECTRA_POOLING_*}). */
public enum Pooling {
    /** The mean over the text's tokens, [CLS] and [SEP] included, padding not (the default). */
    MEAN(0),
    /** The [CLS] token's state. */
    CLS(1);

    final int code;

    Pooling(int code) {
        this.code = code;
    }
}
