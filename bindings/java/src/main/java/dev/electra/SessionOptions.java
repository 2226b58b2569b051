package dev.electra;

/** Options of {@link Session#create(Model, SessionOptions)}. */
public final class SessionOptions extends Options<SessionOptions> {
    /** {@code "cpu"} (the default), {@code "cuda"} or {@code "cuda:N"}. */
    public SessionOptions device(String device) {
        return set("device", device);
    }

    /** Host worker threads; 0 (the default) is one per core. Results do not depend on it. */
    public SessionOptions threads(int threads) {
        return set("threads", threads);
    }

    /** A memory budget in bytes; 0 (the default) is none beyond the machine's memory. */
    public SessionOptions maxMemoryBytes(long bytes) {
        return set("max_memory_bytes", bytes);
    }
}
