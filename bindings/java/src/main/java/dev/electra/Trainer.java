package dev.electra;

/**
 * Pre-training state: model, optimizer, RNG. One thread at a time steps a trainer (calls from
 * several threads are serialised by the binding); {@link #cancel()} and {@link #close()} may be
 * called from any thread at any time: a step in flight finishes (cancelled, when asked) and the
 * library releases the memory when it returns.
 */
public final class Trainer extends NativeHandle {
    private final Object callLock = new Object();

    private Trainer(long handle) {
        super(handle, Native::trainerFree, "Trainer");
    }

    /**
     * A new trainer. {@code init} is a preset ({@code tiny}, {@code small}, {@code base},
     * {@code large}) or a directory (the pair layout, or a lone discriminator).
     */
    public static Trainer create(String init, TrainerOptions options) {
        return create(init, options == null ? null : options.toJson());
    }

    /** {@link #create(String, TrainerOptions)} with options as a JSON object (null: defaults). */
    public static Trainer create(String init, String optionsJson) {
        return new Trainer(Native.trainerNew(init, optionsJson));
    }

    /** Restores a trainer saved by {@link #save(String)}; training continues bit-identically. */
    public static Trainer resume(String dir) {
        return resume(dir, (String) null);
    }

    /** {@link #resume(String)} on another device or thread count (or as another rank). */
    public static Trainer resume(String dir, ResumeOptions options) {
        return resume(dir, options == null ? null : options.toJson());
    }

    /** {@link #resume(String)} with options as a JSON object (null: the checkpoint's). */
    public static Trainer resume(String dir, String optionsJson) {
        return new Trainer(Native.trainerResume(dir, optionsJson));
    }

    /**
     * One step on {@code batch*seqLen} token ids (mask and types may be null). Bad input, a
     * non-finite loss and cancellation leave the trainer as it was.
     */
    public StepStats step(int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        float[] stats = new float[6];
        synchronized (callLock) {
            try {
                long step = Native.trainerStep(handle(), ids, mask, types, batch, seqLen, stats);
                return new StepStats(step, stats);
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }

    /** {@link #step(int[], int[], int[], int, int)} without mask and token types. */
    public StepStats step(int[] ids, int batch, int seqLen) {
        return step(ids, null, null, batch, seqLen);
    }

    private void write(int what, String dir) {
        synchronized (callLock) {
            try {
                Native.trainerWrite(handle(), what, dir);
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }

    /** Saves the full state to {@code dir/trainer.safetensors} (for {@link #resume(String)}). */
    public void save(String dir) {
        write(0, dir);
    }

    /** Writes the model in the pair layout, loadable by {@link Model#load(String)}. */
    public void export(String dir) {
        write(1, dir);
    }

    /** A snapshot of the current weights as a model (later steps do not change it). */
    public Model model() {
        synchronized (callLock) {
            try {
                return new Model(Native.trainerModel(handle()));
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }

    /**
     * Asks the running (or next) step to stop with {@link Status#CANCELLED}. Any thread, any
     * time; a no-op on a closed trainer.
     */
    public void cancel() {
        try {
            Native.trainerCancel(handle());
        } catch (ElectraException closed) {
            // cancelling a closed trainer does nothing
        } finally {
            keepAlive();
        }
    }

    /**
     * Makes this trainer (created with options {@code rank} and {@code world_size}) one rank of
     * a data-parallel run whose gradients {@code allReduce} sums. A collective call: every rank
     * calls it before its first step or right after resuming.
     */
    public void setAllReduce(AllReduce allReduce) {
        synchronized (callLock) {
            try {
                Native.trainerSetAllReduce(handle(), allReduce);
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }
}
