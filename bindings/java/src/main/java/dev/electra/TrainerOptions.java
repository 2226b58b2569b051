package dev.electra;

/**
 * Options of {@link Trainer#create(String, TrainerOptions)}. Keys without a setter here
 * (adam_beta1, adam_beta2, bias_correction, gen_weight, disc_weight, temperature,
 * generator_hidden_fraction, rank, world_size, ...) go through {@link #set(String, Object)};
 * electra.h lists them all.
 */
public final class TrainerOptions extends Options<TrainerOptions> {
    public TrainerOptions learningRate(double v) { return set("learning_rate", v); }

    public TrainerOptions warmupSteps(long v) { return set("warmup_steps", v); }

    public TrainerOptions totalSteps(long v) { return set("total_steps", v); }

    public TrainerOptions weightDecay(double v) { return set("weight_decay", v); }

    public TrainerOptions maxGradNorm(double v) { return set("max_grad_norm", v); }

    public TrainerOptions maskProb(double v) { return set("mask_prob", v); }

    /** {@code "electra"} (the default) or {@code "mlm"}. */
    public TrainerOptions objective(String v) { return set("objective", v); }

    public TrainerOptions vocabSize(int v) { return set("vocab_size", v); }

    public TrainerOptions maxSeqLen(int v) { return set("max_seq_len", v); }

    public TrainerOptions maskTokenId(int v) { return set("mask_token_id", v); }

    public TrainerOptions specialTokenIds(int... ids) { return set("special_token_ids", ids.clone()); }

    public TrainerOptions seed(long v) { return set("seed", v); }

    public TrainerOptions threads(int v) { return set("threads", v); }

    /** {@code "cpu"} (the default), {@code "cuda"} or {@code "cuda:N"}. */
    public TrainerOptions device(String v) { return set("device", v); }

    public TrainerOptions maxMemoryBytes(long v) { return set("max_memory_bytes", v); }

    /** Dropout in training: {@code true} (the default) applies config.json's probabilities as HF does, {@code false} none. */
    public TrainerOptions dropout(boolean v) { return set("dropout", v); }

    /** Dropout in training at probability {@code p} everywhere, in [0, 1). */
    public TrainerOptions dropout(double p) { return set("dropout", p); }
}
