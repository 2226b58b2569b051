package dev.electra;

import static dev.electra.Fixtures.assertClose;
import static dev.electra.Fixtures.assertSameBits;
import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.expected;
import static dev.electra.Fixtures.fixture;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Mirrors bindings/go/errors_test.go, plus the JNI layer's own argument checks. */
public class ErrorsTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    @Test
    public void loadErrors() throws Exception {
        String missing = new File(tmp.getRoot(), "no-such-model").getPath();
        expectError("missing dir", Status.IO, () -> Model.load(missing), "no-such-model");
        expectError("NUL in path", Status.INVALID_ARGUMENT, () -> Model.load("bad\0path"), "NUL");
        expectError("unpaired surrogate in path", Status.INVALID_ARGUMENT, () -> Model.load("bad\ud800path"),
                "surrogate");
        expectError("null path", Status.NULL_POINTER, () -> Model.load((String) null), "path");
        // Non-ASCII paths reach the library intact: BMP characters and a supplementary one (two
        // UTF-16 surrogates, 6 bytes of the JVM's modified UTF-8, 4 of UTF-8).
        String odd = new File(tmp.getRoot(), "mod\u00e8le-\u6a21\u578b-\ud83d\ude00").getPath();
        expectError("non-ASCII missing dir", Status.IO, () -> Model.load(odd), "mod\u00e8le-\u6a21\u578b-\ud83d\ude00");
        File real = new File(tmp.getRoot(), "\u00e9\ud83d\ude00");
        try (Model m = Model.load(fixture("relu_act", "discriminator"))) {
            m.save(real.getPath());
        }
        // Checked through the library, not java.io.File: the JVM's file-name encoding follows the
        // locale (ASCII under LANG=C), the library's paths are always UTF-8.
        try (Model back = Model.load(real.getPath())) {
            assertTrue(back.info().hasDiscriminator());
        }

        // A directory with a valid config but a corrupt weights file.
        File dir = tmp.newFolder();
        Files.copy(new File(fixture("relu_act", "discriminator", "config.json")).toPath(),
                new File(dir, "config.json").toPath());
        Files.write(new File(dir, "model.safetensors").toPath(),
                "\u0010\0\0\0\0\0\0\0{not json".getBytes(StandardCharsets.ISO_8859_1));
        expectError("corrupt weights", Status.FORMAT, () -> Model.load(dir.getPath()), "model.safetensors");
    }

    @Test
    public void inputErrors() {
        Fixtures.Expected e = expected("emb_lt_hidden");
        try (Model m = Model.load(fixture("emb_lt_hidden")); Session s = m.newSession()) {
            ModelInfo info = m.info();
            int n = e.batch * e.seqLen;
            int b = e.batch;
            int t = e.seqLen;

            int[] bad = e.ids.clone();
            bad[3] = info.vocabSize();
            expectError("id = vocab_size", Status.INVALID_ARGUMENT, () -> s.discriminate(bad, e.mask, e.types, b, t),
                    String.valueOf(info.vocabSize()));
            int[] neg = e.ids.clone();
            neg[3] = -1;
            expectError("negative id", Status.INVALID_ARGUMENT, () -> s.discriminate(neg, e.mask, e.types, b, t));
            int[] badTypes = e.types.clone();
            badTypes[0] = info.typeVocabSize();
            expectError("token type out of range", Status.INVALID_ARGUMENT,
                    () -> s.hiddenStates(e.ids, e.mask, badTypes, b, t));
            int[] badMask = e.mask.clone();
            badMask[0] = 7;
            expectError("mask not 0/1", Status.INVALID_ARGUMENT, () -> s.discriminate(e.ids, badMask, e.types, b, t));
            int[] longIds = new int[info.maxPositionEmbeddings() + 1];
            Arrays.fill(longIds, 5);
            expectError("seqLen > max positions", Status.INVALID_ARGUMENT,
                    () -> s.discriminate(longIds, 1, longIds.length), "max_position_embeddings");

            // Checked by the JNI layer, before the library sees a pointer.
            expectError("short ids", Status.SHAPE,
                    () -> s.discriminate(Arrays.copyOf(e.ids, n - 1), e.mask, e.types, b, t), "ids.length");
            expectError("short mask", Status.SHAPE,
                    () -> s.discriminate(e.ids, Arrays.copyOf(e.mask, n - 1), e.types, b, t), "mask.length");
            expectError("empty types", Status.SHAPE, () -> s.generatorLogits(e.ids, e.mask, new int[0], b, t),
                    "types.length");
            expectError("long ids", Status.SHAPE,
                    () -> s.discriminate(Arrays.copyOf(e.ids, n + 1), e.mask, e.types, b, t), "ids.length");
            expectError("null ids", Status.NULL_POINTER, () -> s.discriminate(null, e.mask, e.types, b, t), "ids");
            expectError("empty batch", Status.INVALID_ARGUMENT, () -> s.discriminate(new int[0], 0, 4), "positive");
            expectError("negative batch", Status.INVALID_ARGUMENT, () -> s.discriminate(e.ids, -1, -n), "positive");
            expectError("overflowing batch", Status.INVALID_ARGUMENT,
                    () -> s.discriminate(e.ids, 1 << 30, 1 << 30), "too large");
            expectError("short dst", Status.BUFFER_TOO_SMALL,
                    () -> s.discriminateInto(new float[n - 1], e.ids, e.mask, e.types, b, t));
            expectError("null dst", Status.BUFFER_TOO_SMALL,
                    () -> s.hiddenStatesInto(null, e.ids, e.mask, e.types, b, t));
            float[] untouched = new float[n - 1];
            Arrays.fill(untouched, 3f);
            expectError("short dst is untouched", Status.BUFFER_TOO_SMALL,
                    () -> s.discriminateInto(untouched, e.ids, e.mask, e.types, b, t));
            for (float v : untouched) {
                assertTrue(v == 3f);
            }

            // The session still works after every refusal.
            assertClose("after errors", s.discriminate(e.ids, e.mask, e.types, b, t), e.floats("disc_logits"));
        }
    }

    @Test
    public void closedHandles() throws Exception {
        Fixtures.Expected e = expected("relu_act");
        Model m = Model.load(fixture("relu_act"));
        Session s = m.newSession();
        s.close();
        s.close(); // idempotent
        assertTrue(s.isClosed());
        expectError("closed session", Status.INVALID_HANDLE,
                () -> s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen), "closed");
        expectError("closed session (into)", Status.INVALID_HANDLE,
                () -> s.generatorLogitsInto(new float[10000], e.ids, e.mask, e.types, e.batch, e.seqLen), "closed");

        m.close();
        m.close();
        String dir = tmp.newFolder().getPath();
        expectError("closed model info", Status.INVALID_HANDLE, m::info, "closed");
        expectError("closed model newSession", Status.INVALID_HANDLE, m::newSession, "closed");
        expectError("closed model save", Status.INVALID_HANDLE, () -> m.save(dir), "closed");
        expectError("null model", Status.INVALID_HANDLE, () -> Session.create(null));

        Trainer tr = Trainer.create("tiny", TrainerTest.tinyOptions());
        tr.close();
        tr.close();
        tr.cancel(); // a no-op
        int[][] batch = TrainerTest.trainBatch(0);
        expectError("closed trainer step", Status.INVALID_HANDLE,
                () -> tr.step(batch[0], batch[1], batch[2], TrainerTest.B, TrainerTest.T), "closed");
        expectError("closed trainer save", Status.INVALID_HANDLE, () -> tr.save(dir), "closed");
        expectError("closed trainer export", Status.INVALID_HANDLE, () -> tr.export(dir), "closed");
        expectError("closed trainer model", Status.INVALID_HANDLE, tr::model, "closed");
    }

    /** Native entry points given handles that were never made or are of another kind. */
    @Test
    public void madeUpAndWrongKindHandles() {
        try (Model m = Model.load(fixture("relu_act", "discriminator"))) {
            long mh = m.handle();
            expectError("model as a session", Status.INVALID_HANDLE,
                    () -> Native.sessionRun(mh, 0, new int[] {1}, null, null, 1, 1, null, 1));
            expectError("made-up model", Status.INVALID_HANDLE, () -> Native.modelInfo(12345));
            expectError("made-up trainer", Status.INVALID_HANDLE,
                    () -> Native.trainerStep(-16, new int[] {1}, null, null, 1, 1, null));
            expectError("unknown session call", Status.INVALID_ARGUMENT,
                    () -> Native.sessionRun(mh, 9, new int[] {1}, null, null, 1, 1, null, 1));
            Native.sessionFree(mh); // the wrong kind: a no-op
            Native.trainerFree(mh);
            Native.finetunerFree(mh);
            Native.trainerCancel(mh);
            m.info(); // the model is still alive
        }
    }

    /** Each thread sees the message of its own failure. */
    @Test
    public void errorMessagesPerThread() throws Exception {
        String root = tmp.getRoot().getPath();
        Fixtures.onThreads(16, w -> {
            for (int i = 0; i < 20; i++) {
                String name = "missing-" + w + "-" + i;
                expectError(name, Status.IO, () -> Model.load(new File(root, name).getPath()), name);
            }
        });
    }

    @Test
    public void saveModelRoundTrip() throws Exception {
        Fixtures.Expected e = expected("emb_lt_hidden");
        String dir = new File(tmp.getRoot(), "saved").getPath();
        try (Model m = Model.load(fixture("emb_lt_hidden")); Session s = m.newSession()) {
            m.save(dir);
            for (String sub : new String[] {"discriminator", "generator"}) {
                assertTrue(new File(dir, sub + "/config.json").isFile());
            }
            float[] want = s.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen);
            try (Model back = Model.load(dir); Session bs = back.newSession()) {
                assertSameBits("saved model", bs.generatorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen), want);
            }
            File notDir = tmp.newFile("file");
            expectError("save under a file", Status.IO, () -> m.save(new File(notDir, "sub").getPath()));
            expectError("save NUL", Status.INVALID_ARGUMENT, () -> m.save("a\0b"), "NUL");
            expectError("save null", Status.NULL_POINTER, () -> m.save(null));
        }
    }
}
