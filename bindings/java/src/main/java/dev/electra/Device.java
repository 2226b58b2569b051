package dev.electra;

/** Kinds of compute device ({@code ELECTRA_DEVICE_*}). */
public enum Device {
    /** The host CPU (always present). */
    CPU(0),
    /** NVIDIA GPUs through CUDA (a library built with the {@code cuda} feature and a driver). */
    CUDA(1);

    private final int kind;

    Device(int kind) {
        this.kind = kind;
    }

    /** The C value. */
    public int kind() {
        return kind;
    }
}
