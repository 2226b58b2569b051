package dev.electra;

/** Options of {@link Model#load(String, LoadOptions)}. */
public final class LoadOptions extends Options<LoadOptions> {
    /** Accept files holding tensors the config does not account for (default false). */
    public LoadOptions allowUnusedTensors(boolean allow) {
        return set("allow_unused_tensors", allow);
    }

    /** {@code "f32"} (the default) or {@code "int8"}: quantize the weights as they load. */
    public LoadOptions quantize(String format) {
        return set("quantize", format);
    }
}
