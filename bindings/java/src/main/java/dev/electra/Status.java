package dev.electra;

/** The library's status codes ({@code ELECTRA_*} in electra.h); never renumbered. */
public enum Status {
    OK(0),
    INVALID_ARGUMENT(1),
    NULL_POINTER(2),
    INVALID_HANDLE(3),
    IO(4),
    FORMAT(5),
    SHAPE(6),
    BUFFER_TOO_SMALL(7),
    OUT_OF_MEMORY(8),
    CANCELLED(9),
    UNSUPPORTED(10),
    NUMERIC(11),
    CUDA(12),
    INTERNAL(13),
    PANIC(14),
    DISTRIBUTED(15),
    /** A code this binding does not know (from a newer library). */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The C value ({@code ELECTRA_OK}, {@code ELECTRA_ERR_*}). */
    public int code() {
        return code;
    }

    /** The status of a C code; {@link #UNKNOWN} for codes this binding does not name. */
    public static Status of(int code) {
        for (Status s : values()) {
            if (s.code == code && s != UNKNOWN) {
                return s;
            }
        }
        return UNKNOWN;
    }

    /** The library's name for a code ("ok", "invalid argument", ..., "unknown status"). */
    public static String describe(int code) {
        return Native.statusName(code);
    }

    /** The library's name for this status ({@code electra_status_str}). */
    public String description() {
        return Native.statusName(code);
    }
}
