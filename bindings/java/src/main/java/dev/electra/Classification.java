package dev.electra;

/** One text's result of {@link Session#classifyTexts}: the probabilities and the most likely label. */
public final class Classification {
    private final float[] probabilities;
    private final int labelId;
    private final String label;
    private final float score;

    Classification(float[] probabilities, String[] labels) {
        this.probabilities = probabilities;
        int best = 0;
        for (int i = 1; i < probabilities.length; i++) {
            if (probabilities[i] > probabilities[best]) {
                best = i;
            }
        }
        this.labelId = best;
        this.label = best < labels.length ? labels[best] : null;
        this.score = probabilities.length > 0 ? probabilities[best] : Float.NaN;
    }

    /**
     * The softmax over the labels, in label id order (one label: the raw regression output);
     * {@link Session#labels()} names them. The array itself, not a copy.
     */
    public float[] probabilities() { return probabilities; }

    /** The most likely label's id. */
    public int labelId() { return labelId; }

    /** Its name (config.json's id2label; LABEL_i where it has none). */
    public String label() { return label; }

    /** Its probability. */
    public float score() { return score; }

    @Override
    public String toString() {
        return String.format("%s (%.4f)", label, score);
    }
}
