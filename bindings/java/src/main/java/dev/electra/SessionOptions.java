package dev.electra;

/** Options of {@link Session#create(Model, SessionOptions)}. */
public final class SessionOptions extends Options<SessionOptions> {
    /** {@code "cpu"} (the default), {@code "cuda"} or {@code "cuda:N"}. */
    public SessionOptions device(String device) {
        return set("device", device);
    }

    /**
     * Host worker threads: 0 (the default) the process-wide shared pool (see {@link
     * Electra#setDefaultThreads}; one per core unless set), 1 the calling thread only (no worker
     * thread), N &gt;= 2 N workers (the shared pool when that is its size, else a pool of the
     * session's own). Results do not depend on it.
     */
    public SessionOptions threads(int threads) {
        return set("threads", threads);
    }

    /** A pool of the session's own of {@code threads} workers (0: one per core), never the shared one. */
    public SessionOptions ownPool(boolean own) {
        return set("own_pool", own);
    }

    /** A memory budget in bytes; 0 (the default) is none beyond the machine's memory. */
    public SessionOptions maxMemoryBytes(long bytes) {
        return set("max_memory_bytes", bytes);
    }
}
