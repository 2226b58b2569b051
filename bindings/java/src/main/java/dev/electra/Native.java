package dev.electra;

/**
 * The JNI entry points (src/jni/ of the Rust crate, compiled into libelectra with the {@code jni}
 * feature). Every method that can fail throws {@link ElectraException}; handles are the C
 * pointers' bits in a {@code long}, checked by the library against its registry of live handles.
 */
final class Native {
    private Native() {}

    static {
        String path = System.getProperty("electra.library.path");
        if (path != null && !path.isEmpty()) {
            System.load(path);
        } else {
            System.loadLibrary("electra");
        }
    }

    /** Forces the class (and the library) to load. */
    static void load() {}

    static native int abiVersion();

    static native String version();

    static native String statusName(int code);

    static native long deviceCount(int kind);

    static native void setDefaultThreads(long n);

    static native long defaultThreads();

    static native long modelLoad(String path, String options);

    /** Exactly one of {@code weights} and {@code direct} (a direct buffer) is non-null. */
    static native long modelLoadMemory(byte[] config, byte[] weights, java.nio.ByteBuffer direct, String options);

    static native void modelFree(long model);

    static native long[] modelInfo(long model);

    static native void modelSave(long model, String dir);

    static native long sessionNew(long model, String options);

    static native void sessionFree(long session);

    /**
     * One call's token arrays ({@code batch*seqLen} each; {@code mask} and {@code types} may be
     * null) and shape, passed to the native side as one object, which reads its fields by name.
     */
    static final class Tokens {
        final int[] ids;
        final int[] mask;
        final int[] types;
        final int batch;
        final int seqLen;

        Tokens(int[] ids, int[] mask, int[] types, int batch, int seqLen) {
            this.ids = ids;
            this.mask = mask;
            this.types = types;
            this.batch = batch;
            this.seqLen = seqLen;
        }
    }

    /** kind: 0 discriminate, 1 generator logits, 2 hidden states, 3 classify. */
    static float[] sessionRun(long session, int kind, int[] ids, int[] mask, int[] types, int batch, int seqLen,
            float[] out, long width) {
        return sessionRun(session, kind, new Tokens(ids, mask, types, batch, seqLen), out, width);
    }

    private static native float[] sessionRun(long session, int kind, Tokens tokens, float[] out, long width);

    static native long trainerNew(String init, String options);

    static native long trainerResume(String dir, String options);

    static long trainerStep(long trainer, int[] ids, int[] mask, int[] types, int batch, int seqLen,
            float[] stats) {
        return trainerStep(trainer, new Tokens(ids, mask, types, batch, seqLen), stats);
    }

    private static native long trainerStep(long trainer, Tokens tokens, float[] stats);

    /** what: 0 save, 1 export. */
    static native void trainerWrite(long trainer, int what, String dir);

    static native long trainerModel(long trainer);

    static native void trainerCancel(long trainer);

    static native void trainerFree(long trainer);

    static native void trainerSetAllReduce(long trainer, AllReduce callback);

    static native long finetunerNew(String dir, long numLabels, String options);

    static long finetunerStep(long finetuner, int[] ids, int[] mask, int[] types, int[] labels, int batch,
            int seqLen, float[] stats) {
        return finetunerStep(finetuner, new Tokens(ids, mask, types, batch, seqLen), labels, stats);
    }

    private static native long finetunerStep(long finetuner, Tokens tokens, int[] labels, float[] stats);

    static native void finetunerSave(long finetuner, String dir);

    static native void finetunerFree(long finetuner);

    // Text (src/jni/text.rs). Texts cross as UTF-8 byte arrays, encoded strictly by the caller.

    static native long tokenizerLoad(String path);

    static native long tokenizerLoadMemory(byte[] json);

    static native long modelTokenizer(long model);

    static native void tokenizerFree(long tokenizer);

    /** {vocabSize, padId, unkId, clsId, sepId, maskId}. */
    static native int[] tokenizerInfo(long tokenizer);

    /** {ids, mask, types, offsets (2 per token, UTF-8 bytes), {seqLen}}; b null: single texts. */
    static native int[][] tokenizerEncode(long tokenizer, byte[][] a, byte[][] b, boolean addSpecial, int maxLength);

    static native String tokenizerDecode(long tokenizer, int[] ids, boolean skipSpecial);

    static native int tokenizerTokenToId(long tokenizer, byte[] token);

    static native String tokenizerIdToToken(long tokenizer, int id);

    static native String[] modelLabels(long model);

    /**
     * kind 0: embeddings (width: the hidden size), 1: class probabilities (width: the labels);
     * tokenizer 0: the model's; params {batchSize, maxLength, pooling, normalize} or null.
     */
    static native float[] sessionTexts(long session, long tokenizer, int kind, byte[][] a, byte[][] b, int[] params,
            long width);

    /** 3 ints per word: start, end (UTF-8 bytes), Float.floatToRawIntBits(score). */
    static native int[] sessionDetectText(long session, long tokenizer, byte[] text, int[] params);

    /** {nMasks, k, then nMasks*k pairs of id, Float.floatToRawIntBits(score)}. */
    static native int[] sessionFillMask(long session, long tokenizer, byte[] text, int topK, int[] params);
}
