package dev.electra;

import java.lang.reflect.Array;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Options of a C call as a builder, serialised to the JSON object the library takes. The typed
 * setters of the subclasses cover the documented keys; {@link #set(String, Object)} sets any key
 * (the library refuses unknown keys and bad values with {@link Status#INVALID_ARGUMENT}, naming
 * them). Values may be null, booleans, numbers, strings, arrays, collections and maps.
 *
 * @param <T> the subclass, returned by the setters for chaining
 */
public abstract class Options<T extends Options<T>> {
    private final Map<String, Object> values = new LinkedHashMap<>();

    Options() {}

    @SuppressWarnings("unchecked")
    private T self() {
        return (T) this;
    }

    /** Sets {@code key} to {@code value} (replacing an earlier value). */
    public T set(String key, Object value) {
        if (key == null) {
            throw new ElectraException(Status.INVALID_ARGUMENT, "options: a key is null");
        }
        values.put(key, value);
        return self();
    }

    /** Sets every entry of {@code map}. */
    public T setAll(Map<String, ?> map) {
        for (Map.Entry<String, ?> e : map.entrySet()) {
            set(e.getKey(), e.getValue());
        }
        return self();
    }

    /** The JSON object the library reads. */
    public String toJson() {
        StringBuilder sb = new StringBuilder();
        write(sb, values, "options");
        return sb.toString();
    }

    @Override
    public String toString() {
        return toJson();
    }

    private static void write(StringBuilder sb, Object v, String where) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new ElectraException(Status.INVALID_ARGUMENT, "options: " + where + " is " + d + ", not a JSON number");
            }
            sb.append(v instanceof Float ? Float.toString((Float) v) : Double.toString(d));
        } else if (v instanceof Number) {
            sb.append(v);
        } else if (v instanceof CharSequence || v instanceof Character || v instanceof Enum) {
            quote(sb, v.toString());
        } else if (v instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!(e.getKey() instanceof String)) {
                    throw new ElectraException(Status.INVALID_ARGUMENT, "options: " + where + " has a key that is not a string");
                }
                if (!first) {
                    sb.append(',');
                }
                first = false;
                quote(sb, (String) e.getKey());
                sb.append(':');
                write(sb, e.getValue(), (String) e.getKey());
            }
            sb.append('}');
        } else if (v instanceof Collection) {
            sb.append('[');
            boolean first = true;
            for (Object o : (Collection<?>) v) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                write(sb, o, where);
            }
            sb.append(']');
        } else if (v.getClass().isArray()) {
            sb.append('[');
            for (int i = 0, n = Array.getLength(v); i < n; i++) {
                if (i > 0) {
                    sb.append(',');
                }
                write(sb, Array.get(v, i), where);
            }
            sb.append(']');
        } else {
            throw new ElectraException(Status.INVALID_ARGUMENT,
                    "options: cannot encode " + where + " (a " + v.getClass().getName() + ") as JSON");
        }
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
