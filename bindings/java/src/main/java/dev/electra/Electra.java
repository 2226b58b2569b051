package dev.electra;

/** Library-wide calls: versions and devices. Thread-safe. */
public final class Electra {
    private Electra() {}

    /** The C ABI this binding was written for ({@code ELECTRA_ABI_VERSION} of electra.h). */
    public static final int HEADER_ABI_VERSION = 1;

    /** The library version, e.g. "0.1.0". */
    public static String version() {
        return Native.version();
    }

    /** The ABI version of the loaded library. */
    public static int abiVersion() {
        return Native.abiVersion();
    }

    /** Throws when the loaded library's ABI is not the one this binding was written for. */
    public static void checkAbi() {
        int lib = abiVersion();
        if (lib != HEADER_ABI_VERSION) {
            throw new ElectraException(Status.UNSUPPORTED,
                    "libelectra has ABI " + lib + ", this binding was written for ABI " + HEADER_ABI_VERSION);
        }
    }

    /**
     * How many devices of this kind the library can use: 1 for the CPU, the driver's count for
     * CUDA. A library built without CUDA, or without a driver, throws {@link Status#CUDA}.
     */
    public static long deviceCount(Device device) {
        if (device == null) {
            throw new ElectraException(Status.NULL_POINTER, "device is null");
        }
        return Native.deviceCount(device.kind());
    }

    /**
     * Sets the size of the process-wide CPU thread pool that sessions, trainers and fine-tuners
     * share by default ({@code electra_set_default_threads}): {@code n} worker threads, 0 = one
     * per core (the default). Call it before the first handle with threads 0 is created; until
     * then a later call replaces the size. From then on the same size succeeds and any other
     * throws {@link Status#INVALID_ARGUMENT} (the pool never resizes under handles using it).
     * With size 1 those handles run on the calling thread, with no worker thread. A negative
     * {@code n} or one above 1024 throws {@link Status#INVALID_ARGUMENT}.
     */
    public static void setDefaultThreads(int n) {
        Native.setDefaultThreads(n);
    }

    /** The size of the shared CPU thread pool: the threads it runs, or will start with. */
    public static long defaultThreads() {
        return Native.defaultThreads();
    }
}
