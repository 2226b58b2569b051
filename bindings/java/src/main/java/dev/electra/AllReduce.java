package dev.electra;

/**
 * A host's sum all-reduce for data-parallel pre-training ({@link Trainer#setAllReduce}):
 * replace {@code data} in place by its element-wise sum over all ranks. Every rank must get the
 * same bits back. It runs on the thread that steps the trainer; an exception it throws fails
 * that step with {@link Status#DISTRIBUTED} on this rank.
 */
@FunctionalInterface
public interface AllReduce {
    /** Sums {@code data} over all ranks, in place. */
    void allReduce(float[] data) throws Exception;
}
