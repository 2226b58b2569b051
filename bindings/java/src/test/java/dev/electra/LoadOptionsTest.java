package dev.electra;

import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.expected;
import static dev.electra.Fixtures.fixture;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Mirrors bindings/go/load_options_test.go. */
public class LoadOptionsTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    /** A 1-layer config over a 2-layer file: refused by default, accepted with allowUnusedTensors. */
    @Test
    public void unusedTensors() throws Exception {
        File src = new File(fixture("emb_lt_hidden", "discriminator"));
        File dir = tmp.newFolder();
        Files.copy(new File(src, "model.safetensors").toPath(), new File(dir, "model.safetensors").toPath());
        String cfg = new String(Files.readAllBytes(new File(src, "config.json").toPath()), StandardCharsets.UTF_8);
        String one = cfg.replaceAll("\"num_hidden_layers\"\\s*:\\s*\\d+", "\"num_hidden_layers\": 1");
        assertFalse("config.json has num_hidden_layers", one.equals(cfg));
        Files.write(new File(dir, "config.json").toPath(), one.getBytes(StandardCharsets.UTF_8));

        expectError("1-layer config over a 2-layer file", Status.FORMAT, () -> Model.load(dir.getPath()));
        expectError("unknown option", Status.INVALID_ARGUMENT, () -> Model.load(dir.getPath(), "{\"no_such_key\": true}"));
        try (Model m = Model.load(dir.getPath(), new LoadOptions().allowUnusedTensors(true))) {
            assertEquals(1, m.info().numHiddenLayers());
        }
    }

    /** Quantize int8: info says so, logits within a few percent, save/load keeps int8, no fine-tuning. */
    @Test
    public void quantizedInt8() throws Exception {
        Fixtures.Expected e = expected("emb_lt_hidden");
        String dir = tmp.newFolder().getPath();
        try (Model m = Model.load(fixture("emb_lt_hidden", "discriminator"), new LoadOptions().quantize("int8"));
                Model f32 = Model.load(fixture("emb_lt_hidden", "discriminator"));
                Session qs = m.newSession(); Session fs = f32.newSession()) {
            assertTrue(m.info().isInt8());
            assertFalse(f32.info().isInt8());
            float[] q = qs.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
            float[] want = fs.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
            double worst = 0;
            double top = 0;
            for (int i = 0; i < want.length; i++) {
                worst = Math.max(worst, Math.abs(q[i] - want[i]));
                top = Math.max(top, Math.abs(want[i]));
            }
            assertTrue("int8 vs f32: max |diff| " + worst + " of " + top, worst > 0 && worst <= 0.05 * top);
            m.save(dir);
        }
        try (Model back = Model.load(dir)) {
            assertTrue(back.info().isInt8());
        }
        expectError("fine-tuning an int8 model", Status.UNSUPPORTED, () -> FineTuner.create(dir, 2, (String) null));
    }
}
