package dev.electra;

import static dev.electra.Fixtures.assertClose;
import static dev.electra.Fixtures.assertSameBits;
import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.finite;
import static dev.electra.Fixtures.fixture;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.util.Arrays;
import java.util.Map;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Mirrors bindings/go/finetune_test.go. */
public class FineTuneTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    /** cls_train.safetensors of emb_lt_hidden: a batch, labels and PyTorch's logits. */
    static final class Cls extends Fixtures.Expected {
        final int[] labels;

        Cls(Map<String, Fixtures.Tensor> f) {
            super(f);
            labels = f.get("labels").ints();
        }
    }

    static Cls cls() {
        return new Cls(Fixtures.readSafetensors(fixture("emb_lt_hidden", "cls_train.safetensors")));
    }

    @Test
    public void classifierParity() {
        Cls c = cls();
        try (Model m = Model.load(fixture("emb_lt_hidden", "classifier")); Session s = m.newSession()) {
            assertEquals(3, m.info().numLabels());
            float[] logits = s.classify(c.ids, c.mask, c.types, c.batch, c.seqLen);
            assertClose("cls_logits", logits, c.floats("cls_logits"));
            float[] buf = new float[c.batch * 3];
            assertEquals(buf.length, s.classifyInto(buf, c.ids, c.mask, c.types, c.batch, c.seqLen));
            assertSameBits("classifyInto", buf, logits);
            expectError("short dst", Status.BUFFER_TOO_SMALL,
                    () -> s.classifyInto(new float[c.batch * 3 - 1], c.ids, c.mask, c.types, c.batch, c.seqLen));
        }
        try (Model d = Model.load(fixture("emb_lt_hidden", "discriminator")); Session s = d.newSession()) {
            expectError("classify without a head", Status.UNSUPPORTED,
                    () -> s.classify(c.ids, c.mask, c.types, c.batch, c.seqLen), "classification head");
        }
    }

    @Test
    public void trainsSavesAndContinues() throws Exception {
        Cls c = cls();
        String dir = new File(tmp.getRoot(), "cls").getPath();
        try (FineTuner f = FineTuner.create(fixture("emb_lt_hidden", "discriminator"), 3,
                new FineTuneOptions().learningRate(1e-3).seed(3).threads(1))) {
            FineTuneStats first = null;
            FineTuneStats last = null;
            for (int k = 1; k <= 10; k++) {
                FineTuneStats s = f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen);
                assertTrue(s.toString(), s.step() == k && finite(s.loss()) && s.loss() > 0 && finite(s.gradNorm())
                        && s.accuracy() >= 0 && s.accuracy() <= 1);
                if (k == 1) {
                    first = s;
                }
                last = s;
            }
            assertTrue("loss did not fall: " + first + " -> " + last, last.loss() < first.loss());
            f.step(c.ids, null, null, c.labels, c.batch, c.seqLen); // without mask/types
            f.save(dir);
        }
        try (Model m = Model.load(dir); Session s = m.newSession()) {
            assertEquals(3, m.info().numLabels());
            float[] logits = s.classify(c.ids, c.mask, c.types, c.batch, c.seqLen);
            assertEquals(c.batch * 3, logits.length);
            for (float v : logits) {
                assertTrue(Arrays.toString(logits), finite(v));
            }
        }
        // Continue from the saved classifier (0 = keep its label count).
        try (FineTuner g = FineTuner.create(dir, 0, "{\"threads\": 1}")) {
            assertEquals(1, g.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen).step());
        }
    }

    /** pool("mean"): learns, is saved with "classifier_pooling": "mean", reloads, and is continued only as mean. */
    @Test
    public void meanPooling() throws Exception {
        Cls c = cls();
        String dir = new File(tmp.getRoot(), "mean").getPath();
        try (FineTuner f = FineTuner.create(fixture("emb_lt_hidden", "discriminator"), 3,
                new FineTuneOptions().learningRate(1e-3).threads(1).pool("mean"))) {
            FineTuneStats first = f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen);
            FineTuneStats last = first;
            for (int k = 2; k <= 10; k++) {
                last = f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen);
            }
            assertTrue("loss did not fall: " + first + " -> " + last, last.loss() < first.loss());
            f.save(dir);
        }
        String cfg = new String(java.nio.file.Files.readAllBytes(new File(dir, "config.json").toPath()),
                java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(cfg, cfg.contains("\"classifier_pooling\": \"mean\""));
        try (Model m = Model.load(dir); Session s = m.newSession()) {
            for (float v : s.classify(c.ids, c.mask, c.types, c.batch, c.seqLen)) {
                assertTrue(finite(v));
            }
        }
        expectError("a [CLS] head over a mean-pooled one", Status.INVALID_ARGUMENT,
                () -> FineTuner.create(dir, 0, new FineTuneOptions().pool("cls")), "pools mean");
        try (FineTuner g = FineTuner.create(dir, 0, "{\"threads\": 1}")) {
            assertEquals(1, g.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen).step());
        }
        expectError("unknown pooling", Status.INVALID_ARGUMENT, () -> FineTuner.create(
                fixture("emb_lt_hidden", "discriminator"), 3, new FineTuneOptions().pool("max")), "pool");
    }

    @Test
    public void errors() throws Exception {
        Cls c = cls();
        String disc = fixture("emb_lt_hidden", "discriminator");
        expectError("0 labels for a new head", Status.INVALID_ARGUMENT,
                () -> FineTuner.create(disc, 0, (String) null), "two labels");
        expectError("negative labels", Status.INVALID_ARGUMENT, () -> FineTuner.create(disc, -1, (String) null),
                "negative");
        // A lone masked-LM checkpoint has the same encoder.
        FineTuner.create(fixture("emb_lt_hidden", "generator"), 2, (String) null).close();
        expectError("unknown option", Status.INVALID_ARGUMENT,
                () -> FineTuner.create(disc, 2, new FineTuneOptions().set("layerwise_lr_decy", 0.9)),
                "layerwise_lr_decy");
        String nope = new File(tmp.getRoot(), "nope").getPath();
        expectError("missing dir", Status.IO, () -> FineTuner.create(nope, 2, (String) null), "nope");

        FineTuner f = FineTuner.create(disc, 3, new FineTuneOptions().threads(1));
        expectError("label out of range", Status.INVALID_ARGUMENT,
                () -> f.step(c.ids, c.mask, c.types, new int[] {0, 1, 3}, c.batch, c.seqLen), "label 3");
        expectError("short labels", Status.SHAPE,
                () -> f.step(c.ids, c.mask, c.types, Arrays.copyOf(c.labels, c.batch - 1), c.batch, c.seqLen),
                "labels.length");
        expectError("null labels", Status.NULL_POINTER,
                () -> f.step(c.ids, c.mask, c.types, null, c.batch, c.seqLen), "labels");
        expectError("short ids", Status.SHAPE,
                () -> f.step(Arrays.copyOfRange(c.ids, 1, c.ids.length), c.mask, c.types, c.labels, c.batch,
                        c.seqLen), "ids.length");
        assertEquals(1, f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen).step());
        f.close();
        f.close();
        expectError("closed fine-tuner step", Status.INVALID_HANDLE,
                () -> f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen), "closed");
        String dir = tmp.newFolder().getPath();
        expectError("closed fine-tuner save", Status.INVALID_HANDLE, () -> f.save(dir), "closed");
    }

    @Test
    public void concurrentSteps() throws Exception {
        Cls c = cls();
        try (FineTuner f = FineTuner.create(fixture("emb_lt_hidden", "discriminator"), 3, "{\"threads\": 1}")) {
            Fixtures.onThreads(4, w -> {
                for (int i = 0; i < 3; i++) {
                    f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen);
                }
            });
            assertEquals(13, f.step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen).step());
        }
    }
}
