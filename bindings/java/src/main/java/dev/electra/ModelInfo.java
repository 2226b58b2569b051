package dev.electra;

/** A model's dimensions ({@code electra_model_info}). */
public final class ModelInfo {
    private final long[] v;

    ModelInfo(long[] v) {
        this.v = v.clone();
    }

    /** V: vocabulary size. */
    public int vocabSize() { return (int) v[0]; }

    /** H: the discriminator's hidden width (the generator's when there is no discriminator). */
    public int hiddenSize() { return (int) v[1]; }

    /** E: embedding width. */
    public int embeddingSize() { return (int) v[2]; }

    /** Largest seqLen accepted. */
    public int maxPositionEmbeddings() { return (int) v[3]; }

    /** Number of token types accepted. */
    public int typeVocabSize() { return (int) v[4]; }

    /** Encoder layers of the discriminator (else the generator). */
    public int numHiddenLayers() { return (int) v[5]; }

    /** Whether the model has a discriminator. */
    public boolean hasDiscriminator() { return v[6] != 0; }

    /** Whether the model has a generator. */
    public boolean hasGenerator() { return v[7] != 0; }

    /** The generator's hidden width (0 without a generator). */
    public int generatorHiddenSize() { return (int) v[8]; }

    /** Total number of distinct parameters. */
    public long numParameters() { return v[9]; }

    /** Labels of the classification head (0 without one). */
    public int numLabels() { return (int) v[10]; }

    /** Whether the Linear weights are int8 ({@code ELECTRA_WEIGHTS_INT8}) rather than f32. */
    public boolean isInt8() { return v[11] == 1; }

    @Override
    public String toString() {
        return "ModelInfo{vocabSize=" + vocabSize() + ", hiddenSize=" + hiddenSize() + ", embeddingSize="
                + embeddingSize() + ", maxPositionEmbeddings=" + maxPositionEmbeddings() + ", typeVocabSize="
                + typeVocabSize() + ", numHiddenLayers=" + numHiddenLayers() + ", hasDiscriminator="
                + hasDiscriminator() + ", hasGenerator=" + hasGenerator() + ", generatorHiddenSize="
                + generatorHiddenSize() + ", numParameters=" + numParameters() + ", numLabels=" + numLabels()
                + ", int8=" + isInt8() + "}";
    }
}
