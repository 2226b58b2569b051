package dev.electra;

/** What one fine-tuning step measured ({@code electra_finetune_stats}). */
public final class FineTuneStats {
    private final long step;
    private final float loss;
    private final float accuracy;
    private final float learningRate;
    private final float gradNorm;

    FineTuneStats(long step, float[] v) {
        this.step = step;
        this.loss = v[0];
        this.accuracy = v[1];
        this.learningRate = v[2];
        this.gradNorm = v[3];
    }

    /** Updates applied so far, this one included. */
    public long step() { return step; }

    /** Mean cross-entropy of the batch. */
    public float loss() { return loss; }

    /** Share of rows classified correctly (before the update). */
    public float accuracy() { return accuracy; }

    /** Learning rate of this update (before layer-wise scaling). */
    public float learningRate() { return learningRate; }

    /** Global gradient norm before clipping. */
    public float gradNorm() { return gradNorm; }

    @Override
    public String toString() {
        return "FineTuneStats{step=" + step + ", loss=" + loss + ", accuracy=" + accuracy + ", learningRate="
                + learningRate + ", gradNorm=" + gradNorm + "}";
    }
}
