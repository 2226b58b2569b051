package dev.electra;

import static dev.electra.Fixtures.assertSameBits;
import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.finite;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Mirrors bindings/go/trainer_test.go. */
public class TrainerTest {
    static final int B = 4;
    static final int T = 16;
    static final int VOCAB = 200;

    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    /** The options of the "tiny" preset used throughout. */
    static TrainerOptions tinyOptions() {
        return new TrainerOptions().vocabSize(VOCAB).maxSeqLen(32).maskTokenId(4).specialTokenIds(0, 1, 2, 3, 4)
                .threads(1).seed(7);
    }

    /** A deterministic batch k: [CLS]=2 ... [SEP]=3, padded with 0 (mask 0); {ids, mask, types}. */
    static int[][] trainBatch(int k) {
        int[] ids = new int[B * T];
        int[] mask = new int[B * T];
        int[] types = new int[B * T];
        for (int r = 0; r < B; r++) {
            int n = T - (r * 3 + k) % 7;
            for (int i = 0; i < n; i++) {
                int p = r * T + i;
                ids[p] = i == 0 ? 2 : i == n - 1 ? 3 : 5 + (r * 17 + i * 7 + k * 3) % (VOCAB - 5);
                mask[p] = 1;
                if (i >= n / 2) {
                    types[p] = 1;
                }
            }
        }
        return new int[][] {ids, mask, types};
    }

    static StepStats step(Trainer tr, int k) {
        int[][] b = trainBatch(k);
        return tr.step(b[0], b[1], b[2], B, T);
    }

    @Test
    public void steps() {
        try (Trainer tr = Trainer.create("tiny", tinyOptions())) {
            for (int k = 1; k <= 4; k++) {
                StepStats s = step(tr, k);
                assertEquals(k, s.step());
                assertTrue(s.toString(), finite(s.loss()) && s.loss() > 0 && finite(s.mlmLoss())
                        && finite(s.discLoss()) && finite(s.gradNorm()) && s.discAccuracy() >= 0
                        && s.discAccuracy() <= 1 && s.learningRate() >= 0);
            }
            // null mask and types are accepted.
            assertEquals(5, tr.step(trainBatch(0)[0], B, T).step());
        }
    }

    /** The dropout option: off or a probability; seeded masks make equal options give equal steps. */
    @Test
    public void dropoutOption() {
        float off, p3, again;
        try (Trainer tr = Trainer.create("tiny", tinyOptions().dropout(false))) {
            off = step(tr, 0).loss();
        }
        try (Trainer tr = Trainer.create("tiny", tinyOptions().dropout(0.3))) {
            p3 = step(tr, 0).loss();
        }
        try (Trainer tr = Trainer.create("tiny", tinyOptions().dropout(0.3))) {
            again = step(tr, 0).loss();
        }
        assertEquals(p3, again, 0.0f);
        assertTrue("dropout 0.3 and off give the same loss", p3 != off);
        expectError("dropout out of range", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().dropout(1.5)), "dropout");
    }

    @Test
    public void optionForms() {
        Map<String, Object> map = new HashMap<>();
        map.put("vocab_size", VOCAB);
        map.put("mask_token_id", 4);
        map.put("special_token_ids", Arrays.asList(0, 1, 2, 3, 4));
        map.put("threads", 1);
        for (Object opts : new Object[] {tinyOptions().toJson(), tinyOptions(), new TrainerOptions().setAll(map)}) {
            try (Trainer tr = opts instanceof String ? Trainer.create("tiny", (String) opts)
                    : Trainer.create("tiny", (TrainerOptions) opts)) {
                step(tr, 0);
            }
        }
    }

    @Test
    public void badOptions() {
        expectError("unknown key", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().set("learning_rat", 0.1)), "learning_rat");
        expectError("out of range", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().maskProb(1.5)), "mask_prob");
        expectError("wrong type", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().set("seed", "seven")), "options");
        expectError("malformed JSON", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", "{\"vocab_size\": 200,"), "options");
        expectError("unencodable options", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().set("x", new Object())), "options");
        expectError("NaN option", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().learningRate(Double.NaN)), "learning_rate");
        expectError("unknown preset", Status.INVALID_ARGUMENT, () -> Trainer.create("huge", tinyOptions()), "huge");
        expectError("null init", Status.NULL_POINTER, () -> Trainer.create(null, tinyOptions()), "init");
        expectError("mask token outside the vocabulary", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", tinyOptions().maskTokenId(5000)), "mask_token_id");
        String missing = new File(tmp.getRoot(), "nothing-here").getPath();
        expectError("resume from a missing dir", Status.IO, () -> Trainer.resume(missing), "nothing-here");
    }

    @Test
    public void badInput() throws Exception {
        try (Trainer tr = Trainer.create("tiny", tinyOptions())) {
            int[][] b = trainBatch(0);
            int[] bad = b[0].clone();
            bad[5] = VOCAB;
            expectError("id out of range", Status.INVALID_ARGUMENT, () -> tr.step(bad, b[1], b[2], B, T));
            expectError("short ids", Status.SHAPE, () -> tr.step(Arrays.copyOf(b[0], 10), b[1], b[2], B, T),
                    "ids.length");
            expectError("short types", Status.SHAPE, () -> tr.step(b[0], b[1], Arrays.copyOf(b[2], 3), B, T),
                    "types.length");
            expectError("null ids", Status.NULL_POINTER, () -> tr.step(null, b[1], b[2], B, T), "ids");
            expectError("empty batch", Status.INVALID_ARGUMENT, () -> tr.step(b[0], b[1], b[2], 0, T));
            int[] longIds = new int[33];
            Arrays.fill(longIds, 9);
            expectError("seqLen > max_seq_len", Status.INVALID_ARGUMENT, () -> tr.step(longIds, 1, 33));
            // Nothing was applied: the next step is the first.
            assertEquals(1, step(tr, 0).step());
            expectError("save NUL", Status.INVALID_ARGUMENT, () -> tr.save("a\0b"), "NUL");
            File notDir = tmp.newFile("file");
            expectError("save under a file", Status.IO, () -> tr.save(new File(notDir, "sub").getPath()));
        }
    }

    /** Save, step twice; resume and step the same batches: identical. Export vs snapshot. */
    @Test
    public void saveResumeExport() throws Exception {
        try (Trainer tr = Trainer.create("tiny", tinyOptions())) {
            step(tr, 0);
            step(tr, 1);
            String ckpt = new File(tmp.getRoot(), "ckpt").getPath();
            tr.save(ckpt);
            assertTrue(new File(ckpt, "trainer.safetensors").isFile());
            StepStats a2 = step(tr, 2);
            StepStats a3 = step(tr, 3);
            try (Trainer rt = Trainer.resume(ckpt)) {
                StepStats b2 = step(rt, 2);
                StepStats b3 = step(rt, 3);
                assertEquals(a2, b2);
                assertEquals(a3, b3);
                assertEquals(4, b3.step());
            }

            String export = new File(tmp.getRoot(), "export").getPath();
            try (Model snap = tr.model()) {
                ModelInfo info = snap.info();
                assertTrue(info.toString(), info.hasDiscriminator() && info.hasGenerator() && info.vocabSize() == VOCAB);
                tr.export(export);
                step(tr, 4); // changes the trainer, not the snapshot nor the export
                int[][] b = trainBatch(9);
                try (Model loaded = Model.load(export); Session ss = snap.newSession();
                        Session ls = loaded.newSession()) {
                    assertSameBits("export vs snapshot", ls.discriminate(b[0], b[1], b[2], B, T),
                            ss.discriminate(b[0], b[1], b[2], B, T));
                    assertSameBits("export vs snapshot (generator)", ls.generatorLogits(b[0], b[1], b[2], B, T),
                            ss.generatorLogits(b[0], b[1], b[2], B, T));
                }
            }
            // A trainer can start from the exported pair.
            try (Trainer t2 = Trainer.create(export, tinyOptions())) {
                step(t2, 0);
            }
            // ... and resume on the CPU with another thread count.
            try (Trainer rt = Trainer.resume(ckpt, new ResumeOptions().device("cpu").threads(2))) {
                assertEquals(3, step(rt, 2).step());
            }
        }
    }

    @Test
    public void cancelBeforeStep() {
        try (Trainer tr = Trainer.create("tiny", tinyOptions())) {
            step(tr, 0);
            tr.cancel();
            expectError("cancelled step", Status.CANCELLED, () -> step(tr, 1));
            assertEquals(2, step(tr, 1).step());
        }
    }

    /** Cancel from another thread while one steps in a loop: one step stops, none is lost. */
    @Test
    public void cancelFromAnotherThread() throws Exception {
        try (Trainer tr = Trainer.create("tiny", tinyOptions().maxSeqLen(64))) {
            int b = 8;
            int t = 64;
            int[] ids = new int[b * t];
            int[] mask = new int[b * t];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = 5 + (i * 31) % (VOCAB - 5);
                mask[i] = 1;
            }
            CountDownLatch started = new CountDownLatch(1);
            AtomicReference<Object> result = new AtomicReference<>();
            long[] last = {0};
            Thread worker = new Thread(() -> {
                try {
                    for (int i = 0; i < 100000; i++) {
                        StepStats s;
                        try {
                            s = tr.step(ids, mask, null, b, t);
                        } catch (ElectraException e) {
                            result.set(e);
                            return;
                        } finally {
                            started.countDown();
                        }
                        if (s.step() != last[0] + 1) {
                            result.set("step count skipped");
                            return;
                        }
                        last[0] = s.step();
                    }
                    result.set("never cancelled");
                } catch (Throwable e) {
                    result.set(e);
                }
            });
            worker.start();
            started.await();
            Thread.sleep(20);
            tr.cancel();
            worker.join(60000);
            assertTrue("the stepping thread did not stop", !worker.isAlive());
            Object r = result.get();
            assertTrue("cancel: " + r, r instanceof ElectraException
                    && ((ElectraException) r).status() == Status.CANCELLED);
            assertEquals(last[0] + 1, tr.step(ids, mask, null, b, t).step());
        }
    }

    /** Steps from several threads on one trainer are serialised: every update counted once. */
    @Test
    public void concurrentSteps() throws Exception {
        try (Trainer tr = Trainer.create("tiny", tinyOptions())) {
            Fixtures.onThreads(4, w -> {
                for (int i = 0; i < 3; i++) {
                    step(tr, w + i);
                }
            });
            assertEquals(13, step(tr, 0).step());
        }
    }

    /** Closing a trainer while another thread steps it: the step finishes, later ones fail. */
    @Test
    public void closeWhileStepping() throws Exception {
        Trainer tr = Trainer.create("tiny", tinyOptions().maxSeqLen(64));
        int[] ids = new int[8 * 64];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = 5 + (i * 13) % (VOCAB - 5);
        }
        CountDownLatch started = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread worker = new Thread(() -> {
            try {
                for (int i = 0; i < 100000; i++) {
                    started.countDown();
                    tr.step(ids, 8, 64);
                }
                failure.set(new AssertionError("never saw the close"));
            } catch (ElectraException e) {
                if (e.status() != Status.INVALID_HANDLE || !e.detail().contains("closed")) {
                    failure.set(e);
                }
            } catch (Throwable e) {
                failure.set(e);
            }
        });
        worker.start();
        started.await();
        Thread.sleep(10);
        tr.close();
        worker.join(60000);
        assertTrue("the stepping thread did not stop", !worker.isAlive());
        assertEquals(null, failure.get());
        assertTrue(tr.isClosed());
    }
}
