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

    private static final int EMBED = 0;
    private static final int CLASSIFY_TEXTS = 1;

    private final Object callLock = new Object();
    private final ModelInfo info;
    private final String[] labels;
    /** The model's own tokenizer (null when it has none): fill-mask's token strings. */
    private final Tokenizer modelTokenizer;

    private Session(long handle, ModelInfo info, String[] labels, Tokenizer modelTokenizer) {
        super(handle, Native::sessionFree, "Session");
        this.info = info;
        this.labels = labels;
        this.modelTokenizer = modelTokenizer;
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
        String[] labels = model.labels();
        Tokenizer tok = null;
        try {
            tok = new Tokenizer(Native.modelTokenizer(model.handle()));
        } catch (ElectraException e) {
            // No tokenizer beside the weights: the text calls need one in their options.
        }
        try {
            return new Session(Native.sessionNew(model.handle(), optionsJson), info, labels, tok);
        } catch (ElectraException e) {
            if (tok != null) {
                tok.close();
            }
            throw model.translate(e);
        } finally {
            model.keepAlive();
        }
    }

    /** Frees the session (and its reference to the model's tokenizer); idempotent, from any thread. */
    @Override
    public void close() {
        super.close();
        if (modelTokenizer != null) {
            modelTokenizer.close();
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

    // ------------------------------------------------------------ text in, answers out

    /** The names of the classification labels, by id (empty without a classifier); a copy. */
    public String[] labels() {
        return labels.clone();
    }

    /** {@link #embedTexts(String[], TextOptions)} with the defaults. */
    public float[][] embedTexts(String... texts) {
        return embedTexts(texts, null);
    }

    /**
     * Sentence embeddings: {@code info().hiddenSize()} floats per text, pooled from the last
     * hidden states as {@code options} say (mean by default; unit length with
     * {@code normalize(true)}). Texts run in padded batches sorted by length, and each embedding
     * equals that text's alone to rounding. Texts longer than {@code maxLength} (default: the
     * model's positions) are cut. The tokenizer is {@code options.tokenizer()}, else the
     * model's ({@link Status#UNSUPPORTED} when it has none). A lone surrogate in a text is an
     * {@link IllegalArgumentException}; no texts {@link Status#INVALID_ARGUMENT}.
     */
    public float[][] embedTexts(String[] texts, TextOptions options) {
        byte[][] a = Utf8.strict(texts, "texts");
        return split(runTexts(EMBED, a, null, options, info.hiddenSize()), info.hiddenSize());
    }

    /** {@link #classifyTexts(String[], TextOptions)} with the defaults. */
    public Classification[] classifyTexts(String... texts) {
        return classifyTexts(texts, null);
    }

    /**
     * Class probabilities of each text from a fine-tuned classifier, with the most likely
     * label's name ({@link #labels()} names them all). A model without a classifier is
     * {@link Status#UNSUPPORTED}. Otherwise as {@link #embedTexts(String[], TextOptions)}.
     */
    public Classification[] classifyTexts(String[] texts, TextOptions options) {
        byte[][] a = Utf8.strict(texts, "texts");
        return classes(runTexts(CLASSIFY_TEXTS, a, null, options, info.numLabels()));
    }

    /**
     * {@link #classifyTexts} on text pairs ([CLS] a [SEP] b [SEP]), as sentence-pair tasks read
     * them; {@code a} and {@code b} hold as many texts ({@link Status#SHAPE} otherwise).
     */
    public Classification[] classifyTextPairs(String[] a, String[] b, TextOptions options) {
        byte[][] ta = Utf8.strict(a, "a");
        byte[][] tb = Utf8.strict(b, "b");
        if (ta.length != tb.length) {
            throw new ElectraException(Status.SHAPE, "a holds " + ta.length + " texts and b " + tb.length
                    + ": pairs need as many");
        }
        return classes(runTexts(CLASSIFY_TEXTS, ta, tb, options, info.numLabels()));
    }

    /** {@link #classifyTextPairs(String[], String[], TextOptions)} with the defaults. */
    public Classification[] classifyTextPairs(String[] a, String[] b) {
        return classifyTextPairs(a, b, null);
    }

    /** {@link #detectText(String, TextOptions)} with the defaults. */
    public WordScore[] detectText(String text) {
        return detectText(text, null);
    }

    /**
     * Replaced-token detection on one text: each word (split at whitespace and punctuation, as
     * BERT does) with its span (UTF-8 bytes and {@code char} indices) and the probability that
     * it was replaced, in text order. Words past {@code maxLength} tokens are not scored. A model
     * without a discriminator is {@link Status#UNSUPPORTED}.
     */
    public WordScore[] detectText(String text, TextOptions options) {
        byte[] t = Utf8.strict(text, "text");
        int[] r;
        synchronized (callLock) {
            try {
                r = Native.sessionDetectText(handle(), tokenizerOf(options), t, TextOptions.params(options));
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
                keepTokenizer(options);
            }
        }
        int[] map = Utf8.charIndex(t);
        WordScore[] out = new WordScore[r.length / 3];
        for (int i = 0; i < out.length; i++) {
            int s = Math.max(0, Math.min(r[3 * i], t.length));
            int e = Math.max(s, Math.min(r[3 * i + 1], t.length));
            out[i] = new WordScore(s, e, Utf8.at(map, s), Utf8.at(map, e), Float.intBitsToFloat(r[3 * i + 2]),
                    new String(t, s, e - s, java.nio.charset.StandardCharsets.UTF_8));
        }
        return out;
    }

    /** {@link #fillMask(String, int, TextOptions)} with the defaults. */
    public TokenScore[][] fillMask(String text, int topK) {
        return fillMask(text, topK, null);
    }

    /**
     * Fill-mask on one text holding [MASK] tokens: for each mask, in text order, the
     * {@code topK} most likely tokens from the generator, best first, with their vocabulary
     * entries ({@code topK} above the vocabulary is cut to it). A text without [MASK] is
     * {@link Status#INVALID_ARGUMENT}, as is {@code topK} below 1; a model without a generator
     * {@link Status#UNSUPPORTED}.
     */
    public TokenScore[][] fillMask(String text, int topK, TextOptions options) {
        byte[] t = Utf8.strict(text, "text");
        int k = Math.min(topK, Math.max(info.vocabSize(), 1));
        Tokenizer tok = options != null && options.tokenizer() != null ? options.tokenizer() : modelTokenizer;
        int[] r;
        synchronized (callLock) {
            try {
                r = Native.sessionFillMask(handle(), tokenizerOf(options), t, k, TextOptions.params(options));
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
                keepTokenizer(options);
            }
        }
        int masks = r[0];
        int per = r[1];
        int vocab = tok == null ? 0 : tok.info().vocabSize();
        TokenScore[][] out = new TokenScore[masks][per];
        for (int m = 0; m < masks; m++) {
            for (int j = 0; j < per; j++) {
                int at = 2 + 2 * (m * per + j);
                int id = r[at];
                String token = id >= 0 && id < vocab ? tok.idToToken(id) : null;
                out[m][j] = new TokenScore(id, Float.intBitsToFloat(r[at + 1]), token);
            }
        }
        return out;
    }

    /** The handle of the options' tokenizer (0: the model's); a closed one is {@link Status#INVALID_HANDLE}. */
    private static long tokenizerOf(TextOptions o) {
        return o == null || o.tokenizer() == null ? 0 : o.tokenizer().handle();
    }

    private static void keepTokenizer(TextOptions o) {
        if (o != null && o.tokenizer() != null) {
            o.tokenizer().keepAlive();
        }
    }

    private float[] runTexts(int kind, byte[][] a, byte[][] b, TextOptions options, int width) {
        synchronized (callLock) {
            try {
                return Native.sessionTexts(handle(), tokenizerOf(options), kind, a, b, TextOptions.params(options),
                        width);
            } catch (ElectraException e) {
                RuntimeException t = translate(e);
                if (t == e && options != null && options.tokenizer() != null) {
                    t = options.tokenizer().translate(e);
                }
                throw t;
            } finally {
                keepAlive();
                keepTokenizer(options);
            }
        }
    }

    private static float[][] split(float[] flat, int width) {
        int n = width == 0 ? 0 : flat.length / width;
        float[][] rows = new float[n][];
        for (int i = 0; i < n; i++) {
            rows[i] = java.util.Arrays.copyOfRange(flat, i * width, (i + 1) * width);
        }
        return rows;
    }

    private Classification[] classes(float[] flat) {
        float[][] rows = split(flat, info.numLabels());
        Classification[] out = new Classification[rows.length];
        for (int i = 0; i < rows.length; i++) {
            out[i] = new Classification(rows[i], labels);
        }
        return out;
    }
}
