package dev.electra;

/**
 * A failed electra call: the library's status code and the message it left (file, tensor,
 * shape, argument). Thrown for every error, bad arguments found by the binding included: a null
 * array ({@link Status#NULL_POINTER}), a wrong length ({@link Status#SHAPE}), a closed handle
 * ({@link Status#INVALID_HANDLE}), a path that is not valid Unicode or holds a NUL
 * ({@link Status#INVALID_ARGUMENT}).
 */
public class ElectraException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final String detail;

    /** Called by the native library and by the binding. */
    public ElectraException(int code, String message) {
        super("electra: " + name(code) + ": " + message);
        this.code = code;
        this.detail = message;
    }

    ElectraException(Status status, String message) {
        this(status.code(), message);
    }

    private static String name(int code) {
        try {
            return Native.statusName(code);
        } catch (Throwable t) {
            return "status " + code;
        }
    }

    /** The C status code ({@code ELECTRA_ERR_*}). */
    public int code() {
        return code;
    }

    /** The status as an enum ({@link Status#UNKNOWN} for a code this binding does not name). */
    public Status status() {
        return Status.of(code);
    }

    /** The library's message alone, without the "electra: status: " prefix. */
    public String detail() {
        return detail;
    }
}
