package dev.electra;

/**
 * Fine-tuning of a sequence classifier. One thread at a time steps it (calls from several
 * threads are serialised by the binding); {@link #close()} may be called from any thread.
 */
public final class FineTuner extends NativeHandle {
    private final Object callLock = new Object();

    private FineTuner(long handle) {
        super(handle, Native::finetunerFree, "FineTuner");
    }

    /**
     * Starts from {@code modelDir}: a checkpoint with a discriminator gets a fresh head of
     * {@code numLabels} labels; an existing classifier continues with its labels (pass 0 or its
     * count, or more to add labels).
     */
    public static FineTuner create(String modelDir, long numLabels, FineTuneOptions options) {
        return create(modelDir, numLabels, options == null ? null : options.toJson());
    }

    /** {@link #create(String, long, FineTuneOptions)} with options as a JSON object (or null). */
    public static FineTuner create(String modelDir, long numLabels, String optionsJson) {
        return new FineTuner(Native.finetunerNew(modelDir, numLabels, optionsJson));
    }

    /**
     * One step on {@code batch} rows of {@code seqLen} ids with one label per row; mask and types
     * may be null. Bad input leaves the weights untouched.
     */
    public FineTuneStats step(int[] ids, int[] mask, int[] types, int[] labels, int batch, int seqLen) {
        float[] stats = new float[4];
        synchronized (callLock) {
            try {
                long step = Native.finetunerStep(handle(), ids, mask, types, labels, batch, seqLen, stats);
                return new FineTuneStats(step, stats);
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }

    /**
     * Saves the classifier as an HF {@code ElectraForSequenceClassification} directory, loadable
     * by {@link Model#load(String)}.
     */
    public void save(String dir) {
        synchronized (callLock) {
            try {
                Native.finetunerSave(handle(), dir);
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }
}
