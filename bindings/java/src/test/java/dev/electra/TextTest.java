package dev.electra;

import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.fixture;
import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The text calls (as the Go and C# text suites): the tokenizer against HF tokenizers'
 * encodings (tests/fixtures/tokenizer/encode.json), byte and char offsets of multilingual text,
 * embeddings batched = alone, cosine similarity, classification with label names, replaced-token
 * detection spans, fill-mask, and the errors (closed handles, no tokenizer, lone surrogates).
 *
 * <p>The models are made once: a "tiny" pre-trained pair with the tokenizer fixture's vocab.txt
 * beside its discriminator, a 3-label classifier fine-tuned from it with named labels and the
 * vocab.txt, and a pair without a tokenizer.
 */
public class TextTest {
    private static Path root;
    private static String pair;
    private static String cls;
    private static String bare;

    static final String[] SAMPLES = {
        "Call me Ishmael.",
        "Some years ago, never mind how long precisely, having little or no money in my purse",
        "café naïve",
        "",
        "白鲸记 Moby Dick 是一本书。 I ❤️ whales 🐋",
        repeat("the whale ", 100), // longer than the model's positions: cut
        "nul\0char and\ttabs",
    };

    static String repeat(String s, int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append(s);
        }
        return b.toString();
    }

    static String tok(String... parts) {
        String[] p = new String[parts.length + 1];
        p[0] = "tokenizer";
        System.arraycopy(parts, 0, p, 1, parts.length);
        return fixture(p);
    }

    @BeforeClass
    public static void makeModels() throws IOException {
        root = Files.createTempDirectory("electra-java-text-");
        pair = root.resolve("pair").toString();
        cls = root.resolve("cls").toString();
        bare = root.resolve("bare").toString();
        TrainerOptions o = new TrainerOptions().vocabSize(3000).maxSeqLen(32).maskTokenId(4)
                .specialTokenIds(0, 1, 2, 3, 4).threads(1).seed(11);
        try (Trainer tr = Trainer.create("tiny", o)) {
            tr.export(pair);
            tr.export(bare);
        }
        Path vocab = Paths.get(tok("vocab.txt"));
        Files.copy(vocab, Paths.get(pair, "discriminator", "vocab.txt"), StandardCopyOption.REPLACE_EXISTING);
        try (FineTuner ft = FineTuner.create(Paths.get(pair, "discriminator").toString(), 3,
                new FineTuneOptions().seed(5).threads(1))) {
            ft.save(cls);
        }
        // Name the labels as a user's config.json would.
        Path cfg = Paths.get(cls, "config.json");
        @SuppressWarnings("unchecked")
        Map<String, Object> config = (Map<String, Object>) new Fixtures.Json(
                new String(Files.readAllBytes(cfg), StandardCharsets.UTF_8)).value();
        Map<String, Object> id2label = new LinkedHashMap<>();
        Map<String, Object> label2id = new LinkedHashMap<>();
        String[] names = {"sad", "neutral", "happy"};
        for (int i = 0; i < names.length; i++) {
            id2label.put(Integer.toString(i), names[i]);
            label2id.put(names[i], (long) i);
        }
        config.put("id2label", id2label);
        config.put("label2id", label2id);
        Files.write(cfg, toJson(config).getBytes(StandardCharsets.UTF_8));
        Files.copy(vocab, Paths.get(cls, "vocab.txt"), StandardCopyOption.REPLACE_EXISTING);
    }

    /** JSON text of what {@link Fixtures.Json} reads (maps, lists, strings, numbers, booleans, null). */
    static String toJson(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof Map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                b.append(b.length() > 1 ? ", " : "").append(toJson(e.getKey().toString())).append(": ")
                        .append(toJson(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (v instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object o : (List<?>) v) {
                b.append(b.length() > 1 ? ", " : "").append(toJson(o));
            }
            return b.append(']').toString();
        }
        if (v instanceof String) {
            StringBuilder b = new StringBuilder("\"");
            for (char c : ((String) v).toCharArray()) {
                if (c == '"' || c == '\\') {
                    b.append('\\').append(c);
                } else if (c < 0x20) {
                    b.append(String.format("\\u%04x", (int) c));
                } else {
                    b.append(c);
                }
            }
            return b.append('"').toString();
        }
        return v.toString();
    }

    @AfterClass
    public static void removeModels() throws IOException {
        if (root != null) {
            try (Stream<Path> s = Files.walk(root)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    static Session session(Model m) {
        return m.newSession(new SessionOptions().threads(1));
    }

    static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs((double) a[i] - b[i]));
        }
        return d;
    }

    // --- encode: the HF fixtures ------------------------------------------------------------

    @SuppressWarnings("unchecked")
    static Map<String, Object> hfFixture() throws IOException {
        String s = new String(Files.readAllBytes(Paths.get(tok("encode.json"))), StandardCharsets.UTF_8);
        return (Map<String, Object>) new Fixtures.Json(s).value();
    }

    static int[] intList(Object o) {
        List<?> l = (List<?>) o;
        int[] out = new int[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) l.get(i)).intValue();
        }
        return out;
    }

    /** Row r of e against HF's encoding of (first, second): ids, types, mask, byte and char offsets, then padding. */
    static void checkRow(String what, Encoding e, int r, Map<?, ?> want, String first, String second) {
        int[] ids = intList(want.get("ids"));
        int[] types = intList(want.get("type_ids"));
        int[] mask = intList(want.get("attention_mask"));
        List<?> offs = (List<?>) want.get("offsets");
        int t = e.seqLen();
        assertTrue(what + ": row of " + t + " tokens, want " + ids.length, ids.length <= t);
        for (int j = 0; j < t; j++) {
            int k = r * t + j;
            if (j >= ids.length) {
                assertEquals(what + ": padding id", 0, e.ids()[k]);
                assertEquals(what + ": padding mask", 0, e.attentionMask()[k]);
                assertEquals(what + ": padding start", 0, e.start(r, j));
                assertEquals(what + ": padding end", 0, e.end(r, j));
                continue;
            }
            String text = types[j] == 1 ? second : first;
            int[] cp = intList(offs.get(j)); // HF counts code points
            int cs = text.offsetByCodePoints(0, cp[0]);
            int ce = text.offsetByCodePoints(0, cp[1]);
            int bs = text.substring(0, cs).getBytes(StandardCharsets.UTF_8).length;
            int be = text.substring(0, ce).getBytes(StandardCharsets.UTF_8).length;
            String at = what + ": token " + j + " (ids " + Arrays.toString(e.row(r)) + ", HF " + Arrays.toString(ids) + ")";
            assertEquals(at + " id", ids[j], e.ids()[k]);
            assertEquals(at + " type", types[j], e.tokenTypeIds()[k]);
            assertEquals(at + " mask", mask[j], e.attentionMask()[k]);
            assertEquals(at + " byte start", bs, e.start(r, j));
            assertEquals(at + " byte end", be, e.end(r, j));
            assertEquals(at + " char start", cs, e.charStart(r, j));
            assertEquals(at + " char end", ce, e.charEnd(r, j));
        }
        assertEquals(what + ": length", Arrays.stream(mask).sum(), e.length(r));
    }

    @Test
    public void encodeMatchesHF() throws IOException {
        Map<String, Object> fx = hfFixture();
        List<Tokenizer> toks = new ArrayList<>();
        try (Model m = Model.load(pair)) {
            toks.add(Tokenizer.load(tok("hf", "tokenizer.json")));
            toks.add(Tokenizer.load(tok("vocab.txt")));
            toks.add(Tokenizer.fromMemory(Files.readAllBytes(Paths.get(tok("hf", "tokenizer.json")))));
            toks.add(m.tokenizer());
            toks.add(Tokenizer.load(pair)); // a model directory
        }
        String[] names = {"tokenizer.json", "vocab.txt", "memory", "model", "model dir"};
        try {
            for (int n = 0; n < toks.size(); n++) {
                Tokenizer tk = toks.get(n);
                String name = names[n];
                TokenizerInfo info = tk.info();
                assertEquals(name, 3000, info.vocabSize());
                assertArrayEquals(name, new int[] {0, 1, 2, 3, 4},
                        new int[] {info.padId(), info.unkId(), info.clsId(), info.sepId(), info.maskId()});
                List<?> single = (List<?>) fx.get("single");
                String[] texts = new String[single.size()];
                for (int i = 0; i < texts.length; i++) {
                    texts[i] = (String) ((Map<?, ?>) single.get(i)).get("text");
                }
                Encoding e = tk.encode(texts);
                assertEquals(texts.length, e.batch());
                assertEquals(e.batch() * e.seqLen(), e.ids().length);
                assertEquals(2 * e.ids().length, e.offsets().length);
                for (int i = 0; i < texts.length; i++) {
                    checkRow(name + " single " + i, e, i, (Map<?, ?>) single.get(i), texts[i], "");
                }
                List<?> pairs = (List<?>) fx.get("pairs");
                String[] as = new String[pairs.size()];
                String[] bs = new String[pairs.size()];
                for (int i = 0; i < as.length; i++) {
                    as[i] = (String) ((Map<?, ?>) pairs.get(i)).get("a");
                    bs[i] = (String) ((Map<?, ?>) pairs.get(i)).get("b");
                }
                e = tk.encodePairs(as, bs);
                for (int i = 0; i < as.length; i++) {
                    checkRow(name + " pair " + i, e, i, (Map<?, ?>) pairs.get(i), as[i], bs[i]);
                }
                for (Object o : (List<?>) fx.get("truncated")) {
                    Map<?, ?> c = (Map<?, ?>) o;
                    EncodeOptions opts = new EncodeOptions().maxLength(((Number) c.get("max_length")).intValue());
                    String a = (String) c.get("a");
                    String b = (String) c.get("b");
                    e = b == null ? tk.encode(new String[] {a}, opts) : tk.encodePairs(new String[] {a}, new String[] {b}, opts);
                    checkRow(name + " truncated " + a, e, 0, c, a, b == null ? "" : b);
                }
            }
        } finally {
            toks.forEach(Tokenizer::close);
        }
    }

    @Test
    public void multilingualOffsetsAndLookups() {
        try (Tokenizer tk = Tokenizer.load(tok("vocab.txt"))) {
            String text = "Café naïve 白鲸记 I ❤️ whales 🐋!";
            byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
            Encoding e = tk.encode(text);
            int len = e.length(0);
            assertEquals(2, e.ids()[0]);
            assertEquals(3, e.ids()[len - 1]);
            int prevEnd = 0;
            for (int j = 1; j < len - 1; j++) {
                int s = e.start(0, j);
                int t = e.end(0, j);
                assertTrue("token " + j + " span " + s + ".." + t, s >= prevEnd && t > s && t <= utf8.length);
                prevEnd = t;
                String byBytes = new String(utf8, s, t - s, StandardCharsets.UTF_8);
                String byChars = text.substring(e.charStart(0, j), e.charEnd(0, j));
                assertEquals("token " + j + ": byte and char spans", byBytes, byChars);
                String piece = tk.idToToken(e.ids()[j]);
                if (byChars.chars().allMatch(c -> c < 128) && byChars.equals(byChars.toLowerCase())) {
                    assertTrue("token " + piece + " covers " + byChars,
                            piece.replaceFirst("^##", "").equals(byChars) || piece.equals("[UNK]"));
                }
            }
            assertTrue("Café".startsWith(text.substring(e.charStart(0, 1), e.charEnd(0, 1))));
            // The whale emoji (a surrogate pair in Java) is one token spanning both chars.
            int whale = text.indexOf("🐋");
            boolean found = false;
            for (int j = 1; j < len - 1; j++) {
                if (e.charStart(0, j) == whale) {
                    assertEquals(whale + 2, e.charEnd(0, j));
                    found = true;
                }
            }
            assertTrue("no token at the whale", found);
            // Without special tokens: the same pieces; maxLength cuts and keeps [SEP].
            Encoding plain = tk.encode(new String[] {text}, new EncodeOptions().addSpecialTokens(false));
            assertArrayEquals(Arrays.copyOfRange(e.row(0), 1, len - 1), plain.ids());
            Encoding cut = tk.encode(new String[] {text}, new EncodeOptions().maxLength(5));
            assertEquals(5, cut.seqLen());
            assertEquals(3, cut.ids()[4]);
            assertArrayEquals(Arrays.copyOf(e.ids(), 4), Arrays.copyOf(cut.ids(), 4));
            // Decode and lookups.
            assertEquals("[CLS] the whale [SEP]", tk.decode(tk.encode("The Whale").ids(), false));
            assertEquals("the whale", tk.decode(tk.encode("The Whale").ids()));
            assertEquals(4, tk.tokenToId("[MASK]"));
            assertEquals(-1, tk.tokenToId("no such entry"));
            assertEquals("[MASK]", tk.idToToken(4));
            expectError("id past the vocabulary", Status.INVALID_ARGUMENT, () -> tk.idToToken(3000), "3000");
            expectError("decode past the vocabulary", Status.INVALID_ARGUMENT, () -> tk.decode(new int[] {3000}, true));
            expectError("no texts", Status.INVALID_ARGUMENT, () -> tk.encode(new String[0], null));
            expectError("null texts", Status.NULL_POINTER, () -> tk.encode((String[]) null, null));
            expectError("pair counts", Status.SHAPE, () -> tk.encodePairs(new String[] {"a"}, new String[0]));
            // A lone surrogate has no UTF-8 form: IllegalArgumentException, nothing replaced.
            for (String bad : new String[] {"x\uD83D", "\uDC0Bx", "a\uDC0B\uD83Db"}) {
                try {
                    tk.encode(bad);
                    fail("lone surrogate accepted: " + bad);
                } catch (IllegalArgumentException ex) {
                    assertTrue(ex.getMessage(), ex.getMessage().contains("lone surrogate"));
                }
            }
        }
        expectError("missing file", Status.IO, () -> Tokenizer.load(tok("nope.txt")));
        expectError("not a tokenizer", Status.FORMAT, () -> Tokenizer.fromMemory("{}".getBytes(StandardCharsets.UTF_8)));
    }

    // --- session text calls -------------------------------------------------------------------

    @Test
    public void embedTextsBatchedEqualsOneAtATime() {
        try (Model m = Model.load(pair); Session s = session(m)) {
            float[][] all = s.embedTexts(SAMPLES, new TextOptions().batchSize(3));
            assertEquals(SAMPLES.length, all.length);
            for (int i = 0; i < SAMPLES.length; i++) {
                assertEquals(m.info().hiddenSize(), all[i].length);
                float[] one = s.embedTexts(SAMPLES[i])[0];
                double d = maxAbsDiff(one, all[i]);
                assertTrue("text " + i + ": batched differs from alone by " + d, d <= 1e-6);
            }
            // The [CLS] pooling differs from the mean.
            float[] c = s.embedTexts(new String[] {SAMPLES[0]}, new TextOptions().pooling(Pooling.CLS))[0];
            assertNotEquals(0.0, maxAbsDiff(c, all[0]), 0.0);
        }
    }

    @Test
    public void embedTextsNormalizedCosine() {
        try (Model m = Model.load(pair); Session s = session(m)) {
            String[] texts = {"the whale swims", "the whale swims", "a completely different sentence about ships"};
            float[][] raw = s.embedTexts(texts);
            float[][] unit = s.embedTexts(texts, new TextOptions().normalize(true));
            for (int i = 0; i < texts.length; i++) {
                double norm = 0;
                for (float x : unit[i]) {
                    norm += (double) x * x;
                }
                assertEquals("unit length", 1.0, Math.sqrt(norm), 1e-5);
                assertEquals("normalizing keeps the direction", 1.0, Embeddings.cosine(raw[i], unit[i]), 1e-5);
            }
            assertEquals(1.0, Embeddings.cosine(unit[0], unit[1]), 1e-5);
            float c = Embeddings.cosine(unit[0], unit[2]);
            assertTrue("cosine " + c, c < 1 - 1e-6 && c >= -1);
            double dot = 0;
            for (int k = 0; k < unit[0].length; k++) {
                dot += (double) unit[0][k] * unit[2][k];
            }
            assertEquals("a dot product of unit vectors", c, dot, 1e-5);
            assertEquals(0f, Embeddings.cosine(new float[4], new float[] {1, 2, 3, 4}), 0f);
        }
    }

    @Test
    public void classifyTextsWithLabelNames() {
        String[] want = {"sad", "neutral", "happy"};
        try (Model m = Model.load(cls); Session s = session(m)) {
            assertArrayEquals(want, m.labels());
            assertArrayEquals(want, s.labels());
            Classification[] res = s.classifyTexts(SAMPLES, new TextOptions().batchSize(2));
            assertEquals(SAMPLES.length, res.length);
            for (int i = 0; i < res.length; i++) {
                Classification r = res[i];
                float sum = 0;
                for (float p : r.probabilities()) {
                    sum += p;
                    assertTrue(p >= 0 && p <= 1 && p <= r.score());
                }
                assertEquals(1.0, sum, 1e-5);
                assertEquals(3, r.probabilities().length);
                assertEquals(want[r.labelId()], r.label());
                float[] one = s.classifyTexts(SAMPLES[i])[0].probabilities();
                assertTrue("text " + i, maxAbsDiff(one, r.probabilities()) <= 1e-6);
            }
            Classification[] pairs = s.classifyTextPairs(new String[] {"Is it raining?", "café"},
                    new String[] {"Yes, it pours.", "白鲸"});
            assertEquals(2, pairs.length);
            float[] single = s.classifyTexts("Is it raining?")[0].probabilities();
            assertNotEquals("a pair classified as its first text alone", 0.0,
                    maxAbsDiff(single, pairs[0].probabilities()), 0.0);
            expectError("pair counts", Status.SHAPE,
                    () -> s.classifyTextPairs(new String[] {"a"}, new String[0]));
        }
        // A model without a classification head.
        try (Model m = Model.load(pair); Session s = session(m)) {
            expectError("classify without a head", Status.UNSUPPORTED, () -> s.classifyTexts("a"));
            assertEquals(0, m.labels().length);
            assertEquals(0, s.labels().length);
        }
    }

    @Test
    public void detectTextSpansAreTheWords() {
        try (Model m = Model.load(pair); Session s = session(m)) {
            String text = "the quick  brown fox\tjumps over the lazy dog";
            WordScore[] words = s.detectText(text);
            String[] fields = text.split("\\s+");
            assertEquals(fields.length, words.length);
            for (int i = 0; i < words.length; i++) {
                WordScore w = words[i];
                assertEquals(fields[i], w.word());
                assertEquals(w.word(), text.substring(w.charStart(), w.charEnd()));
                assertTrue(w.score() >= 0 && w.score() <= 1);
            }
            text = "Café, naïve! 白鲸 🐋";
            byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
            words = s.detectText(text);
            List<String> got = new ArrayList<>();
            for (WordScore w : words) {
                got.add(w.word());
                assertEquals(w.word(), new String(utf8, w.start(), w.end() - w.start(), StandardCharsets.UTF_8));
                assertEquals(w.word(), text.substring(w.charStart(), w.charEnd()));
            }
            assertEquals("Café|,|naïve|!|白|鲸|🐋", String.join("|", got));
            // Longer than the model's positions: cut, the words past it unscored.
            String lng = repeat("whale ", 300);
            words = s.detectText(lng);
            assertTrue(words.length > 0 && words.length < 300 && words[words.length - 1].charEnd() <= lng.length());
            assertEquals(0, s.detectText("").length);
        }
    }

    @Test
    public void fillMask() {
        try (Model m = Model.load(pair); Session s = session(m); Tokenizer tk = m.tokenizer()) {
            TokenScore[][] res = s.fillMask("the [MASK] sat on the [MASK] .", 5);
            assertEquals(2, res.length);
            for (TokenScore[] cands : res) {
                assertEquals(5, cands.length);
                for (int j = 0; j < cands.length; j++) {
                    TokenScore c = cands[j];
                    assertEquals(tk.idToToken(c.id()), c.token());
                    assertTrue(c.score() >= 0 && c.score() <= 1);
                    assertTrue(j == 0 || c.score() <= cands[j - 1].score());
                }
            }
            TokenScore[][] again = s.fillMask("the [MASK] sat on the [MASK] .", 5, new TextOptions().tokenizer(tk));
            assertEquals(Arrays.deepToString(res), Arrays.deepToString(again));
            TokenScore[][] all = s.fillMask("[MASK]", 5000);
            assertEquals(1, all.length);
            assertEquals(3000, all[0].length);
            expectError("no mask", Status.INVALID_ARGUMENT, () -> s.fillMask("no mask here", 3));
            expectError("topK 0", Status.INVALID_ARGUMENT, () -> s.fillMask("[MASK]", 0));
        }
    }

    @Test
    public void textCallErrors() {
        try (Model m = Model.load(pair)) {
            Session s = session(m);
            int positions = m.info().maxPositionEmbeddings();
            expectError("maxLength past the positions", Status.INVALID_ARGUMENT,
                    () -> s.embedTexts(new String[] {"a"}, new TextOptions().maxLength(positions + 1)));
            expectError("no texts", Status.INVALID_ARGUMENT, () -> s.embedTexts(new String[0]));
            expectError("null texts", Status.NULL_POINTER, () -> s.embedTexts((String[]) null, null));
            try {
                s.embedTexts("ok", "lone \uD83D surrogate");
                fail("lone surrogate accepted");
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().contains("texts[1]"));
            }
            try {
                new TextOptions().batchSize(-1);
                fail("negative batchSize accepted");
            } catch (IllegalArgumentException e) {
                // expected
            }
            // Texts longer than the positions are cut: as if maxLength were the positions.
            String[] lng = {repeat("whale ", 200)};
            float[] a = s.embedTexts(lng)[0];
            float[] b = s.embedTexts(lng, new TextOptions().maxLength(positions))[0];
            float[] c = s.embedTexts(lng, new TextOptions().maxLength(8))[0];
            assertEquals(0.0, maxAbsDiff(a, b), 0.0);
            assertNotEquals(0.0, maxAbsDiff(a, c), 0.0);

            // A closed tokenizer passed in, a closed session.
            Tokenizer tk = Tokenizer.load(tok("vocab.txt"));
            tk.close();
            expectError("closed tokenizer", Status.INVALID_HANDLE,
                    () -> s.embedTexts(new String[] {"a"}, new TextOptions().tokenizer(tk)), "closed");
            expectError("closed tokenizer encode", Status.INVALID_HANDLE, () -> tk.encode("a"), "closed");
            expectError("closed tokenizer info", Status.INVALID_HANDLE, tk::info, "closed");
            s.close();
            expectError("closed session", Status.INVALID_HANDLE, () -> s.embedTexts("a"), "closed");
            expectError("closed session detect", Status.INVALID_HANDLE, () -> s.detectText("a"), "closed");
            expectError("closed session fill", Status.INVALID_HANDLE, () -> s.fillMask("[MASK]", 1), "closed");
            expectError("closed session classify", Status.INVALID_HANDLE, () -> s.classifyTexts("a"), "closed");
        }
        // A model without a tokenizer: Unsupported until one is passed.
        try (Model m = Model.load(bare); Session s = session(m); Tokenizer own = Tokenizer.load(tok("vocab.txt"))) {
            expectError("model without a tokenizer", Status.UNSUPPORTED, m::tokenizer);
            expectError("embed without a tokenizer", Status.UNSUPPORTED, () -> s.embedTexts("a"));
            expectError("detect without a tokenizer", Status.UNSUPPORTED, () -> s.detectText("a"));
            assertEquals(1, s.embedTexts(new String[] {"a"}, new TextOptions().tokenizer(own)).length);
            TokenScore[][] r = s.fillMask("[MASK]", 2, new TextOptions().tokenizer(own));
            assertEquals(own.idToToken(r[0][0].id()), r[0][0].token());
            m.close();
            expectError("closed model", Status.INVALID_HANDLE, m::tokenizer, "closed");
            expectError("closed model labels", Status.INVALID_HANDLE, m::labels, "closed");
        }
    }

    @Test
    public void tokenizerOutlivesItsModel() {
        Tokenizer tk;
        try (Model m = Model.load(pair)) {
            tk = m.tokenizer();
        }
        try {
            assertEquals(3000, tk.info().vocabSize());
            assertEquals("whale", tk.decode(tk.encode("whale").ids()));
        } finally {
            tk.close();
        }
    }
}
