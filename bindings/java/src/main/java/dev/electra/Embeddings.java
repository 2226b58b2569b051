package dev.electra;

/** Helpers for the embeddings of {@link Session#embedTexts}. */
public final class Embeddings {
    private Embeddings() {}

    /** The cosine similarity of two vectors of one length (0 when either is zero). */
    public static float cosine(float[] a, float[] b) {
        if (a == null || b == null) {
            throw new NullPointerException(a == null ? "a" : "b");
        }
        if (a.length != b.length) {
            throw new IllegalArgumentException("lengths " + a.length + " and " + b.length + " differ");
        }
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return na == 0 || nb == 0 ? 0f : (float) (dot / Math.sqrt(na * nb));
    }
}
