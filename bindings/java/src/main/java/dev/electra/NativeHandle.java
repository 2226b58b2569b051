package dev.electra;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;

/**
 * A native handle owned by a Java object: {@link #close()} frees it at once (idempotent, from
 * any thread, even while another thread is inside a call on it: that call finishes normally and
 * the library releases the memory when it returns); a {@link Cleaner} frees it when the object
 * becomes unreachable without being closed ({@link Reclaimer}: {@code java.lang.ref.Cleaner}, or
 * a phantom-reference queue on platforms without it). After close the handle value is 0 and every call
 * throws {@link ElectraException} with {@link Status#INVALID_HANDLE}.
 */
abstract class NativeHandle implements AutoCloseable {
    /** What the cleaner runs: it must not reach the owner, or the owner never becomes unreachable. */
    private static final class Release implements Runnable {
        final AtomicLong handle;
        final LongConsumer free;

        Release(long handle, LongConsumer free) {
            this.handle = new AtomicLong(handle);
            this.free = free;
        }

        @Override
        public void run() {
            long h = handle.getAndSet(0);
            if (h != 0) {
                free.accept(h);
            }
        }
    }

    private final Release release;
    private final Reclaimer.Registration cleanable;
    private final String kind;

    NativeHandle(long handle, LongConsumer free, String kind) {
        this.release = new Release(handle, free);
        this.cleanable = Reclaimer.register(this, release);
        this.kind = kind;
    }

    /** The live handle, or {@link Status#INVALID_HANDLE} ("... is closed"). */
    final long handle() {
        long h = release.handle.get();
        if (h == 0) {
            throw closed();
        }
        return h;
    }

    final ElectraException closed() {
        return new ElectraException(Status.INVALID_HANDLE, kind + " is closed");
    }

    /**
     * A failure of a call that raced {@link #close()}: the library saw a freed handle; say
     * "closed" as a call after close would.
     */
    final RuntimeException translate(ElectraException e) {
        if (e.status() == Status.INVALID_HANDLE && isClosed()) {
            return closed();
        }
        return e;
    }

    /** Keeps this object reachable up to here, so the safety net cannot free the handle mid-call. */
    final void keepAlive() {
        Reclaimer.fence(this);
    }

    /** Whether {@link #close()} ran (or the cleaner did). */
    public final boolean isClosed() {
        return release.handle.get() == 0;
    }

    /** Frees the native object; idempotent and safe from any thread at any time. */
    @Override
    public void close() {
        cleanable.clean();
    }
}
