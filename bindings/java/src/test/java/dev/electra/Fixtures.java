package dev.electra;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** tests/fixtures: safetensors reading, expected outputs, tolerances (as the Go and C# suites). */
final class Fixtures {
    private Fixtures() {}

    static final String[] CASES = {"emb_lt_hidden", "emb_eq_hidden", "gelu_new_act", "relu_act"};

    static Path repo() {
        String r = System.getProperty("electra.repo", System.getenv("ELECTRA_REPO"));
        return Paths.get(r == null ? "../.." : r).toAbsolutePath().normalize();
    }

    static String fixture(String... parts) {
        return Paths.get(repo().resolve("tests").resolve("fixtures").toString(), parts).toString();
    }

    /** One tensor of a safetensors file. */
    static final class Tensor {
        final String dtype;
        final int[] shape;
        final ByteBuffer raw;

        Tensor(String dtype, int[] shape, ByteBuffer raw) {
            this.dtype = dtype;
            this.shape = shape;
            this.raw = raw.order(ByteOrder.LITTLE_ENDIAN);
        }

        int numel() {
            int n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }

        int[] ints() {
            assertEquals("I32", dtype);
            int[] v = new int[numel()];
            raw.asIntBuffer().get(v);
            return v;
        }

        float[] floats() {
            assertEquals("F32", dtype);
            float[] v = new float[numel()];
            raw.asFloatBuffer().get(v);
            return v;
        }
    }

    static Map<String, Tensor> readSafetensors(String path) {
        try {
            byte[] b = Files.readAllBytes(Paths.get(path));
            ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
            int n = (int) bb.getLong(0);
            String header = new String(b, 8, n, java.nio.charset.StandardCharsets.UTF_8);
            @SuppressWarnings("unchecked")
            Map<String, Object> h = (Map<String, Object>) new Json(header).value();
            Map<String, Tensor> out = new HashMap<>();
            for (Map.Entry<String, Object> e : h.entrySet()) {
                if (e.getKey().equals("__metadata__")) {
                    continue;
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> t = (Map<String, Object>) e.getValue();
                List<?> shapeList = (List<?>) t.get("shape");
                int[] shape = new int[shapeList.size()];
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = ((Number) shapeList.get(i)).intValue();
                }
                List<?> off = (List<?>) t.get("data_offsets");
                int lo = ((Number) off.get(0)).intValue();
                int hi = ((Number) off.get(1)).intValue();
                ByteBuffer raw = ByteBuffer.wrap(b, 8 + n + lo, hi - lo).slice();
                out.put(e.getKey(), new Tensor((String) t.get("dtype"), shape, raw));
            }
            return out;
        } catch (IOException e) {
            throw new AssertionError(path + ": " + e, e);
        }
    }

    /** A case's expected.safetensors: inputs and PyTorch's outputs. */
    static class Expected {
        final int[] ids;
        final int[] mask;
        final int[] types;
        final int batch;
        final int seqLen;
        final Map<String, Tensor> f;

        Expected(Map<String, Tensor> f) {
            Tensor ids = f.get("input_ids");
            this.ids = ids.ints();
            this.mask = f.get("attention_mask").ints();
            this.types = f.get("token_type_ids").ints();
            this.batch = ids.shape[0];
            this.seqLen = ids.shape[1];
            this.f = f;
        }

        float[] floats(String name) {
            Tensor t = f.get(name);
            if (t == null) {
                fail("expected.safetensors lacks " + name);
            }
            return t.floats();
        }

        int dim(String name, int i) {
            return f.get(name).shape[i];
        }
    }

    static Expected expected(String c) {
        return new Expected(readSafetensors(fixture(c, "expected.safetensors")));
    }

    /** |got-want| &lt;= 1e-6*max|want| + 1e-5*|want| elementwise, as the Rust parity tests. */
    static void assertClose(String what, float[] got, float[] want) {
        assertEquals(what + ": length", want.length, got.length);
        double scale = 0;
        for (float w : want) {
            scale = Math.max(scale, Math.abs(w));
        }
        double atol = 1e-6 * scale;
        for (int i = 0; i < got.length; i++) {
            double g = got[i];
            double w = want[i];
            if (!(Math.abs(g - w) <= atol + 1e-5 * Math.abs(w))) {
                fail(what + ": element " + i + ": got " + g + " want " + w);
            }
        }
    }

    static void assertSameBits(String what, float[] got, float[] want) {
        assertEquals(what + ": length", want.length, got.length);
        for (int i = 0; i < got.length; i++) {
            if (Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(want[i])) {
                fail(what + ": element " + i + ": " + got[i] + " vs " + want[i]);
            }
        }
    }

    /** Runs {@code body}, which must throw an ElectraException with this status and fragments. */
    static ElectraException expectError(String what, Status status, Runnable body, String... fragments) {
        try {
            body.run();
        } catch (ElectraException e) {
            assertEquals(what + ": status (message " + e.getMessage() + ")", status, e.status());
            assertEquals(what + ": code", status.code(), e.code());
            for (String f : fragments) {
                assertTrue(what + ": message " + e.getMessage() + " lacks " + f, e.detail().contains(f));
            }
            assertTrue(what + ": getMessage() = " + e.getMessage(), e.getMessage().startsWith("electra: "));
            return e;
        }
        fail(what + ": no ElectraException");
        return null;
    }

    static boolean finite(float x) {
        return !Float.isNaN(x) && !Float.isInfinite(x);
    }

    /** Runs body(0..n-1) on n threads; rethrows the first failure. */
    static void onThreads(int n, java.util.function.IntConsumer body) throws InterruptedException {
        List<Thread> threads = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int i = 0; i < n; i++) {
            final int w = i;
            Thread t = new Thread(() -> {
                try {
                    body.accept(w);
                } catch (Throwable e) {
                    failures.add(e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        if (!failures.isEmpty()) {
            throw new AssertionError(failures.size() + " thread(s) failed: " + failures.get(0), failures.get(0));
        }
    }

    /** A minimal JSON reader (objects, arrays, strings, numbers, literals) for headers and configs. */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object value() {
            ws();
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (s.charAt(i) == '}') {
                    i++;
                    return m;
                }
                while (true) {
                    ws();
                    String k = string();
                    ws();
                    i++; // ':'
                    m.put(k, value());
                    ws();
                    if (s.charAt(i++) == '}') {
                        return m;
                    }
                }
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                ws();
                if (s.charAt(i) == ']') {
                    i++;
                    return l;
                }
                while (true) {
                    l.add(value());
                    ws();
                    if (s.charAt(i++) == ']') {
                        return l;
                    }
                }
            }
            if (c == '"') {
                return string();
            }
            if (s.startsWith("true", i)) {
                i += 4;
                return Boolean.TRUE;
            }
            if (s.startsWith("false", i)) {
                i += 5;
                return Boolean.FALSE;
            }
            if (s.startsWith("null", i)) {
                i += 4;
                return null;
            }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            String num = s.substring(start, i);
            if (num.contains(".") || num.contains("e") || num.contains("E")) {
                return Double.parseDouble(num);
            }
            return Long.parseLong(num);
        }

        private void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private String string() {
            StringBuilder sb = new StringBuilder();
            i++; // '"'
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return sb.toString();
                }
                if (c == '\\') {
                    char e = s.charAt(i++);
                    switch (e) {
                        case 'n': sb.append('\n'); break;
                        case 't': sb.append('\t'); break;
                        case 'r': sb.append('\r'); break;
                        case 'b': sb.append('\b'); break;
                        case 'f': sb.append('\f'); break;
                        case 'u': sb.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                        default: sb.append(e);
                    }
                } else {
                    sb.append(c);
                }
            }
        }
    }
}
