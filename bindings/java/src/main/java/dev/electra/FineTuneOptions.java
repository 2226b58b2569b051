package dev.electra;

/** Options of {@link FineTuner#create(String, long, FineTuneOptions)} (electra.h lists the keys). */
public final class FineTuneOptions extends Options<FineTuneOptions> {
    public FineTuneOptions learningRate(double v) { return set("learning_rate", v); }

    public FineTuneOptions warmupSteps(long v) { return set("warmup_steps", v); }

    public FineTuneOptions totalSteps(long v) { return set("total_steps", v); }

    public FineTuneOptions weightDecay(double v) { return set("weight_decay", v); }

    public FineTuneOptions layerwiseLrDecay(double v) { return set("layerwise_lr_decay", v); }

    public FineTuneOptions maxGradNorm(double v) { return set("max_grad_norm", v); }

    public FineTuneOptions seed(long v) { return set("seed", v); }

    public FineTuneOptions threads(int v) { return set("threads", v); }

    /** {@code "cpu"} (the default), {@code "cuda"} or {@code "cuda:N"}. */
    public FineTuneOptions device(String v) { return set("device", v); }

    public FineTuneOptions maxMemoryBytes(long v) { return set("max_memory_bytes", v); }

    /** Dropout in training: {@code true} (the default) applies config.json's probabilities as HF does, {@code false} none. */
    public FineTuneOptions dropout(boolean v) { return set("dropout", v); }

    /** Dropout in training at probability {@code p} everywhere, in [0, 1). */
    public FineTuneOptions dropout(double p) { return set("dropout", p); }

    /**
     * What the head reads: {@code "cls"} (the first token's state, as HF ElectraForSequenceClassification) or
     * {@code "mean"} (the mean of the non-padding tokens' states, saved as "classifier_pooling": "mean"). Left
     * out: a classifier's own pooling, {@code "cls"} for a new head.
     */
    public FineTuneOptions pool(String v) { return set("pool", v); }
}
