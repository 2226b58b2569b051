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
     * Loading from memory awaits the C ABI's load-from-buffer (issue 21, the text-level API):
     * the library reads checkpoints from directories only today.
     *
     * @throws UnsupportedOperationException always, for now
     */
    public static Model load(ByteBuffer checkpoint) {
        throw new UnsupportedOperationException(
                "loading a model from memory awaits the C ABI's load-from-buffer (issue 21); load a directory");
    }

    /** As {@link #load(ByteBuffer)}: not supported yet. */
    public static Model load(byte[] checkpoint) {
        throw new UnsupportedOperationException(
                "loading a model from memory awaits the C ABI's load-from-buffer (issue 21); load a directory");
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
}
