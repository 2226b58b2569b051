package dev.electra;

/** Options of {@link Trainer#resume(String, ResumeOptions)}: an absent key keeps the checkpoint's. */
public final class ResumeOptions extends Options<ResumeOptions> {
    /** {@code "cpu"}, {@code "cuda"} or {@code "cuda:N"}. */
    public ResumeOptions device(String v) { return set("device", v); }

    public ResumeOptions threads(int v) { return set("threads", v); }

    /** This process's rank in a run with a host all-reduce. */
    public ResumeOptions rank(int v) { return set("rank", v); }
}
