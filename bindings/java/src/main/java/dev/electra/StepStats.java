package dev.electra;

import java.util.Arrays;

/** What one pre-training step measured ({@code electra_step_stats}). */
public final class StepStats {
    private final long step;
    private final float[] v;

    StepStats(long step, float[] v) {
        this.step = step;
        this.v = v.clone();
    }

    /** Updates applied so far, this one included. */
    public long step() { return step; }

    /** gen_weight·mlm_loss + disc_weight·disc_loss. */
    public float loss() { return v[0]; }

    /** Generator cross-entropy at the masked positions. */
    public float mlmLoss() { return v[1]; }

    /** Discriminator BCE over real tokens (0 for the mlm objective). */
    public float discLoss() { return v[2]; }

    /** Share of real tokens the discriminator labels correctly. */
    public float discAccuracy() { return v[3]; }

    /** Learning rate this step used. */
    public float learningRate() { return v[4]; }

    /** Global gradient norm before clipping. */
    public float gradNorm() { return v[5]; }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof StepStats)) {
            return false;
        }
        StepStats s = (StepStats) o;
        return step == s.step && Arrays.equals(v, s.v);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(step) * 31 + Arrays.hashCode(v);
    }

    @Override
    public String toString() {
        return "StepStats{step=" + step + ", loss=" + loss() + ", mlmLoss=" + mlmLoss() + ", discLoss=" + discLoss()
                + ", discAccuracy=" + discAccuracy() + ", learningRate=" + learningRate() + ", gradNorm="
                + gradNorm() + "}";
    }
}
