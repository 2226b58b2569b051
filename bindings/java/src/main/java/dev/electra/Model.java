package dev.electra;

import java.nio.ByteBuffer;

/**
 * A loaded model: immutable weights, shared by any number of {@link Session}s on any threads
 * (its methods may run concurrently). Sessions keep the weights alive, so a model may be closed
 * before its sessions.
 */
public final class Model extends NativeHandle {
    Model(long handle) {
        super(handle, Native::modelFree, "Model");
    }

    /**
     * Loads an HF directory (config.json + model.safetensors of a discriminator, generator or
     * classifier) or the pair layout ({@code path/discriminator}, {@code path/generator}).
     */
    public static Model load(String path) {
        return load(path, (String) null);
    }

    /** {@link #load(String)} with options (null: the defaults). */
    public static Model load(String path, LoadOptions options) {
        return load(path, options == null ? null : options.toJson());
    }

    /** {@link #load(String)} with options as a JSON object (null or "": the defaults). */
    public static Model load(String path, String optionsJson) {
        return new Model(Native.modelLoad(path, optionsJson));
    }

    /**
     * Loads one HF checkpoint (discriminator, generator or classifier, f32 or int8) from its
     * config.json and model.safetensors held in memory, such as an app's bundled assets: no file
     * is written. Both are checked as strictly as files are; the weights are copied into the
     * model, so the arrays may be reused as soon as this returns.
     */
    public static Model load(byte[] configJson, byte[] weights) {
        return load(configJson, weights, (String) null);
    }

    /** {@link #load(byte[], byte[])} with options as a JSON object (null or "": the defaults). */
    public static Model load(byte[] configJson, byte[] weights, String optionsJson) {
        return new Model(Native.modelLoadMemory(configJson, weights, null, optionsJson));
    }

    /** {@link #load(byte[], byte[])} with options (null: the defaults). */
    public static Model load(byte[] configJson, byte[] weights, LoadOptions options) {
        return load(configJson, weights, options == null ? null : options.toJson());
    }

    /**
     * {@link #load(byte[], byte[])} from buffers, each read from its position to its limit
     * (positions unchanged). A direct {@code weights} buffer (a memory-mapped asset, say) is read
     * in place, without a copy on the Java side.
     */
    public static Model load(ByteBuffer configJson, ByteBuffer weights) {
        return load(configJson, weights, (String) null);
    }

    /** {@link #load(ByteBuffer, ByteBuffer)} with options as a JSON object (null or "": the defaults). */
    public static Model load(ByteBuffer configJson, ByteBuffer weights, String optionsJson) {
        byte[] config = remaining(configJson);
        if (weights != null && weights.isDirect()) {
            return new Model(Native.modelLoadMemory(config, null, weights.slice(), optionsJson));
        }
        return new Model(Native.modelLoadMemory(config, remaining(weights), null, optionsJson));
    }

    /** {@link #load(ByteBuffer, ByteBuffer)} with options (null: the defaults). */
    public static Model load(ByteBuffer configJson, ByteBuffer weights, LoadOptions options) {
        return load(configJson, weights, options == null ? null : options.toJson());
    }

    /** The bytes from position to limit (null stays null: the native side names it). */
    private static byte[] remaining(ByteBuffer b) {
        if (b == null) {
            return null;
        }
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }

    /** The model's dimensions. */
    public ModelInfo info() {
        try {
            return new ModelInfo(Native.modelInfo(handle()));
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /**
     * Saves in the pair layout under {@code dir} ({@code dir/discriminator},
     * {@code dir/generator}), touching nothing there that the save did not write.
     */
    public void save(String dir) {
        try {
            Native.modelSave(handle(), dir);
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /** A new CPU session over this model, one worker thread per core. */
    public Session newSession() {
        return Session.create(this, (String) null);
    }

    /** A new session with options. */
    public Session newSession(SessionOptions options) {
        return Session.create(this, options == null ? null : options.toJson());
    }

    /** A new session with options as a JSON object (null: the defaults). */
    public Session newSession(String optionsJson) {
        return Session.create(this, optionsJson);
    }

    private volatile String[] labels;

    /**
     * The tokenizer saved beside the model's weights (tokenizer.json or vocab.txt in the
     * directory {@link #load(String)} read), shared with the model: close it when done. A model
     * without one (or loaded from memory) is {@link Status#UNSUPPORTED}, as is one whose
     * tokenizer could not be read or has more ids than the model.
     */
    public Tokenizer tokenizer() {
        try {
            return new Tokenizer(Native.modelTokenizer(handle()));
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /**
     * The names of the classification labels, by id (config.json's id2label; LABEL_i where it
     * has none); empty without a classifier. A copy; {@link Status#INVALID_HANDLE} once closed.
     */
    public String[] labels() {
        String[] l = labels;
        if (l == null || isClosed()) {
            try {
                l = Native.modelLabels(handle());
            } catch (ElectraException e) {
                throw translate(e);
            } finally {
                keepAlive();
            }
            labels = l;
        }
        return l.clone();
    }
}
