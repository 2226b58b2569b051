package dev.electra;

/**
 * An inference session over a {@link Model}: its worker threads and scratch memory. One thread
 * at a time runs a session's calls: calls from several threads are serialised by the binding
 * (the library itself would refuse the second with "in use by another thread"). For parallel
 * inference give each thread its own session over the shared model. {@link #close()} may be
 * called from any thread at any time.
 *
 * <p>Inputs: {@code ids} holds {@code batch*seqLen} token ids, row-major; {@code mask}
 * (1 = token, 0 = padding) and {@code types} (token type ids) hold as many or are null (all
 * ones, all zeros). Results are row-major float arrays.
 */
public final class Session extends NativeHandle {
    private static final int DISCRIMINATE = 0;
    private static final int GENERATOR = 1;
    private static final int HIDDEN = 2;
    private static final int CLASSIFY = 3;

    private final Object callLock = new Object();
    private final ModelInfo info;

    private Session(long handle, ModelInfo info) {
        super(handle, Native::sessionFree, "Session");
        this.info = info;
    }

    /**
     * A session with options as a JSON object ({@code device}, {@code threads},
     * {@code max_memory_bytes}; null: the defaults).
     */
    public static Session create(Model model, String optionsJson) {
        if (model == null) {
            throw new ElectraException(Status.INVALID_HANDLE, "model is null");
        }
        ModelInfo info = model.info();
        try {
            return new Session(Native.sessionNew(model.handle(), optionsJson), info);
        } catch (ElectraException e) {
            throw model.translate(e);
        } finally {
            model.keepAlive();
        }
    }

    /** A CPU session over {@code model} (as {@link Model#newSession()}). */
    public static Session create(Model model) {
        return create(model, (String) null);
    }

    /** A session with options (device, threads, memory budget; null: the defaults). */
    public static Session create(Model model, SessionOptions options) {
        return create(model, options == null ? null : options.toJson());
    }

    /** The dimensions of the session's model (read when the session was made). */
    public ModelInfo info() {
        return info;
    }

    private float[] run(int kind, float[] dst, int[] ids, int[] mask, int[] types, int batch, int seqLen, long width) {
        synchronized (callLock) {
            try {
                return Native.sessionRun(handle(), kind, ids, mask, types, batch, seqLen, dst, width);
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
        }
    }

    private static float[] need(float[] dst) {
        if (dst == null) {
            throw new ElectraException(Status.BUFFER_TOO_SMALL, "dst is null");
        }
        return dst;
    }

    /** Replaced-token logits, {@code batch*seqLen} values (&gt; 0 means "replaced"). */
    public float[] discriminate(int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        return run(DISCRIMINATE, null, ids, mask, types, batch, seqLen, 1);
    }

    /** {@link #discriminate(int[], int[], int[], int, int)} without mask and token types. */
    public float[] discriminate(int[] ids, int batch, int seqLen) {
        return discriminate(ids, null, null, batch, seqLen);
    }

    /** Writes the logits into {@code dst} (at least batch*seqLen long); returns how many. */
    public int discriminateInto(float[] dst, int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        run(DISCRIMINATE, need(dst), ids, mask, types, batch, seqLen, 1);
        return batch * seqLen;
    }

    /** Generator (masked-LM) logits, {@code batch*seqLen*vocabSize} values. */
    public float[] generatorLogits(int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        return run(GENERATOR, null, ids, mask, types, batch, seqLen, info.vocabSize());
    }

    /** Writes the generator logits into {@code dst}; returns how many. */
    public int generatorLogitsInto(float[] dst, int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        run(GENERATOR, need(dst), ids, mask, types, batch, seqLen, info.vocabSize());
        return batch * seqLen * info.vocabSize();
    }

    /** The discriminator's last hidden states, {@code batch*seqLen*hiddenSize} values. */
    public float[] hiddenStates(int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        return run(HIDDEN, null, ids, mask, types, batch, seqLen, info.hiddenSize());
    }

    /** Writes the hidden states into {@code dst}; returns how many. */
    public int hiddenStatesInto(float[] dst, int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        run(HIDDEN, need(dst), ids, mask, types, batch, seqLen, info.hiddenSize());
        return batch * seqLen * info.hiddenSize();
    }

    /**
     * Classification logits, {@code batch*numLabels} values, for a model with a classification
     * head; {@link Status#UNSUPPORTED} otherwise.
     */
    public float[] classify(int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        return run(CLASSIFY, null, ids, mask, types, batch, seqLen, info.numLabels());
    }

    /** Writes the classification logits into {@code dst}; returns how many. */
    public int classifyInto(float[] dst, int[] ids, int[] mask, int[] types, int batch, int seqLen) {
        run(CLASSIFY, need(dst), ids, mask, types, batch, seqLen, info.numLabels());
        return batch * info.numLabels();
    }
}
