package dev.electra;

import static dev.electra.Fixtures.assertClose;
import static dev.electra.Fixtures.assertSameBits;
import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.expected;
import static dev.electra.Fixtures.fixture;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import org.junit.Test;

/** Mirrors bindings/go/inference_test.go. */
public class InferenceTest {
    @Test
    public void versionAndAbi() {
        assertTrue(Electra.version(), Electra.version().matches("^\\d+\\.\\d+\\.\\d+.*"));
        assertEquals(Electra.HEADER_ABI_VERSION, Electra.abiVersion());
        Electra.checkAbi();
        assertEquals("ok", Status.OK.description());
        assertEquals("invalid argument", Status.INVALID_ARGUMENT.description());
        assertEquals("cancelled", Status.CANCELLED.description());
        assertEquals("panic", Status.PANIC.description());
        assertEquals("unknown status", Status.describe(999));
        assertEquals(Status.UNKNOWN, Status.of(999));
        for (Status s : Status.values()) {
            if (s != Status.UNKNOWN) {
                assertEquals(s, Status.of(s.code()));
            }
        }
        assertEquals(15, Status.DISTRIBUTED.code());
    }

    @Test
    public void discriminatorParity() {
        for (String c : Fixtures.CASES) {
            Fixtures.Expected e = expected(c);
            try (Model m = Model.load(fixture(c, "discriminator")); Session s = m.newSession()) {
                ModelInfo info = m.info();
                assertTrue(c + " " + info, info.hasDiscriminator() && !info.hasGenerator()
                        && info.hiddenSize() == e.dim("disc_hidden", 2) && info.numParameters() > 0
                        && info.maxPositionEmbeddings() >= e.seqLen && info.numHiddenLayers() > 0);
                assertClose(c + " disc_logits", s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                        e.floats("disc_logits"));
                assertClose(c + " disc_hidden", s.hiddenStates(e.ids, e.mask, e.types, e.batch, e.seqLen),
                        e.floats("disc_hidden"));
                expectError(c + " generator logits from a lone discriminator", Status.UNSUPPORTED,
                        () -> s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen));
            }
        }
    }

    @Test
    public void generatorParity() {
        for (String c : Fixtures.CASES) {
            Fixtures.Expected e = expected(c);
            try (Model m = Model.load(fixture(c, "generator")); Session s = m.newSession()) {
                ModelInfo info = m.info();
                assertTrue(c + " " + info, !info.hasDiscriminator() && info.hasGenerator()
                        && info.vocabSize() == e.dim("gen_logits", 2));
                assertClose(c + " gen_logits", s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen),
                        e.floats("gen_logits"));
                expectError(c + " discriminate with a lone generator", Status.UNSUPPORTED,
                        () -> s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen));
            }
        }
    }

    @Test
    public void pairLayoutParity() {
        for (String c : Fixtures.CASES) {
            Fixtures.Expected e = expected(c);
            try (Model m = Model.load(fixture(c)); Session s = m.newSession()) {
                ModelInfo info = m.info();
                assertTrue(c + " " + info, info.hasDiscriminator() && info.hasGenerator()
                        && info.generatorHiddenSize() == e.dim("gen_hidden", 2));
                assertClose(c + " disc_logits", s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                        e.floats("disc_logits"));
                assertClose(c + " gen_logits", s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen),
                        e.floats("gen_logits"));
            }
        }
    }

    @Test
    public void optionalInputsAndInto() {
        Fixtures.Expected e = expected("emb_lt_hidden");
        try (Model m = Model.load(fixture("emb_lt_hidden")); Session s = m.newSession()) {
            int n = e.batch * e.seqLen;
            int[] ones = new int[n];
            Arrays.fill(ones, 1);
            float[] explicit = s.discriminate(e.ids, ones, new int[n], e.batch, e.seqLen);
            float[] implicit = s.discriminate(e.ids, e.batch, e.seqLen);
            assertSameBits("null mask/types = ones/zeros", implicit, explicit);

            // Into variants write into the caller's buffer, which may be longer than needed.
            ModelInfo info = s.info();
            float[] buf = new float[n * info.vocabSize() + 7];
            Arrays.fill(buf, -42);
            int k = s.generatorLogitsInto(buf, e.ids, e.mask, e.types, e.batch, e.seqLen);
            assertEquals(n * info.vocabSize(), k);
            assertEquals(-42f, buf[buf.length - 1], 0f);
            assertClose("generatorLogitsInto", Arrays.copyOf(buf, k), e.floats("gen_logits"));
            float[] hb = new float[n * info.hiddenSize()];
            s.hiddenStatesInto(hb, e.ids, e.mask, e.types, e.batch, e.seqLen);
            assertClose("hiddenStatesInto", hb, e.floats("disc_hidden"));
            float[] db = new float[n];
            assertEquals(n, s.discriminateInto(db, e.ids, e.mask, e.types, e.batch, e.seqLen));
            assertClose("discriminateInto", db, e.floats("disc_logits"));
        }
    }

    /** Many threads share one Model, each with its own Session; every result is bit-identical. */
    @Test
    public void sharedModelManyThreads() throws Exception {
        Fixtures.Expected e = expected("emb_eq_hidden");
        try (Model m = Model.load(fixture("emb_eq_hidden"))) {
            float[] ref;
            float[] refGen;
            try (Session s = m.newSession()) {
                ref = s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
                refGen = s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen);
            }
            Fixtures.onThreads(16, w -> {
                try (Session s = Session.create(m, new SessionOptions().threads(1))) {
                    for (int i = 0; i < 25; i++) {
                        if ((w + i) % 2 == 0) {
                            assertSameBits("worker " + w, s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen), ref);
                        } else {
                            assertSameBits("worker " + w,
                                    s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen), refGen);
                        }
                    }
                }
            });
        }
    }

    /** One Session used from many threads at once is serialised by the binding, not corrupted. */
    @Test
    public void oneSessionManyThreads() throws Exception {
        Fixtures.Expected e = expected("relu_act");
        float[] want = e.floats("disc_hidden");
        try (Model m = Model.load(fixture("relu_act", "discriminator")); Session s = m.newSession()) {
            Fixtures.onThreads(8, w -> {
                for (int i = 0; i < 10; i++) {
                    assertClose("thread " + w, s.hiddenStates(e.ids, e.mask, e.types, e.batch, e.seqLen), want);
                }
            });
        }
    }

    /** A session keeps the weights alive after its Model is closed. */
    @Test
    public void sessionOutlivesModel() {
        Fixtures.Expected e = expected("gelu_new_act");
        Model m = Model.load(fixture("gelu_new_act", "discriminator"));
        try (Session s = m.newSession()) {
            m.close();
            assertTrue(m.isClosed());
            assertClose("after Model.close", s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                    e.floats("disc_logits"));
        }
    }

    /** Handles dropped without close are freed by the Cleaner (this must not crash). */
    @Test
    public void cleanerFreesForgottenHandles() throws Exception {
        Fixtures.Expected e = expected("gelu_new_act");
        for (int i = 0; i < 20; i++) {
            Model m = Model.load(fixture("gelu_new_act"));
            Session s = m.newSession();
            s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
            System.gc();
        }
        System.gc();
        Thread.sleep(50);
        System.gc();
    }

    /** Closing a session while other threads are inside calls on it: no crash; later calls fail. */
    @Test
    public void closeWhileInUse() throws Exception {
        Fixtures.Expected e = expected("emb_lt_hidden");
        try (Model m = Model.load(fixture("emb_lt_hidden"))) {
            Session s = m.newSession();
            java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(4);
            Thread closer = new Thread(() -> {
                try {
                    started.await();
                } catch (InterruptedException ie) {
                    return;
                }
                s.close();
            });
            closer.start();
            Fixtures.onThreads(4, w -> {
                started.countDown();
                for (int i = 0; i < 1000; i++) {
                    try {
                        s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen);
                    } catch (ElectraException ex) {
                        assertEquals(ex.getMessage(), Status.INVALID_HANDLE, ex.status());
                        assertTrue(ex.getMessage(), ex.detail().contains("closed"));
                        return;
                    }
                }
                throw new AssertionError("never saw the close");
            });
            closer.join();
            assertTrue(s.isClosed());
            assertFalse(m.isClosed());
        }
    }

    @Test
    public void loadFromMemoryMatchesTheDirectory() throws Exception {
        for (String c : Fixtures.CASES) {
            Fixtures.Expected e = expected(c);
            byte[] config = java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(fixture(c, "discriminator", "config.json")));
            byte[] weights = java.nio.file.Files.readAllBytes(
                    java.nio.file.Paths.get(fixture(c, "discriminator", "model.safetensors")));
            java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(weights.length + 8);
            direct.position(8);
            direct.put(weights);
            direct.position(8);
            try (Model a = Model.load(config, weights); Model b = Model.load(java.nio.ByteBuffer.wrap(config), direct);
                    Model q = Model.load(config, weights, "{\"quantize\": \"int8\"}");
                    Session sa = a.newSession(); Session sb = b.newSession()) {
                assertEquals("the buffer's position is unchanged", 8, direct.position());
                float[] la = sa.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
                assertClose(c + " from memory", la, e.floats("disc_logits"));
                assertSameBits(c + " direct buffer", la, sb.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen));
                assertTrue(q.info().toString(), q.info().hasDiscriminator());
            }
        }
        byte[] config = java.nio.file.Files.readAllBytes(
                java.nio.file.Paths.get(fixture(Fixtures.CASES[0], "discriminator", "config.json")));
        byte[] weights = java.nio.file.Files.readAllBytes(
                java.nio.file.Paths.get(fixture(Fixtures.CASES[0], "discriminator", "model.safetensors")));
        expectError("null config", Status.NULL_POINTER, () -> Model.load((byte[]) null, weights), "configJson");
        expectError("null weights", Status.NULL_POINTER, () -> Model.load(config, (byte[]) null), "weights");
        expectError("null buffers", Status.NULL_POINTER,
                () -> Model.load((java.nio.ByteBuffer) null, (java.nio.ByteBuffer) null), "configJson");
        expectError("garbage weights", Status.FORMAT, () -> Model.load(config, new byte[] {1, 2, 3}), "<memory>");
        expectError("truncated weights", Status.FORMAT,
                () -> Model.load(config, java.util.Arrays.copyOf(weights, weights.length / 2)), "<memory>");
        expectError("garbage config", Status.FORMAT, () -> Model.load(new byte[] {(byte) 0xff}, weights), "config.json");
        expectError("config not an object", Status.FORMAT, () -> Model.load("[]".getBytes(), weights), "config.json");
        expectError("options not an object", Status.INVALID_ARGUMENT, () -> Model.load(config, weights, "[]"));
    }
}
