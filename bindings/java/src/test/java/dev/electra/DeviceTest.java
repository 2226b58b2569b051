package dev.electra;

import static dev.electra.Fixtures.assertClose;
import static dev.electra.Fixtures.assertSameBits;
import static dev.electra.Fixtures.expectError;
import static dev.electra.Fixtures.expected;
import static dev.electra.Fixtures.fixture;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.util.Collections;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Mirrors bindings/go/device_test.go. */
public class DeviceTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    /** The CUDA device count, or -1 when this library or machine has none. */
    static long cudaCount() {
        try {
            return Electra.deviceCount(Device.CUDA);
        } catch (ElectraException e) {
            assertEquals(Status.CUDA, e.status());
            return -1;
        }
    }

    @Test
    public void deviceCount() {
        assertEquals(1, Electra.deviceCount(Device.CPU));
        cudaCount();
        expectError("device kind 7", Status.INVALID_ARGUMENT, () -> Native.deviceCount(7), "7");
        expectError("null device", Status.NULL_POINTER, () -> Electra.deviceCount(null));
        assertEquals(0, Device.CPU.kind());
        assertEquals(1, Device.CUDA.kind());
    }

    /**
     * The shared pool's size is set once (mirrors TestDefaultThreads of bindings/go): the size in
     * use is always accepted, another one is refused once a session used the pool (other tests of
     * this JVM may have started it); threads 1 and a pool of its own give the same bits.
     */
    @Test
    public void defaultThreads() {
        long n = Electra.defaultThreads();
        assertTrue("defaultThreads() = " + n, n >= 1);
        Electra.setDefaultThreads((int) n);
        expectError("negative", Status.INVALID_ARGUMENT, () -> Electra.setDefaultThreads(-1), "negative");
        expectError("1025", Status.INVALID_ARGUMENT, () -> Electra.setDefaultThreads(1025), "1024");
        Fixtures.Expected e = expected("relu_act");
        try (Model m = Model.load(fixture("relu_act"))) {
            float[] want;
            try (Session s = m.newSession()) {
                want = s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
            }
            expectError("resize", Status.INVALID_ARGUMENT, () -> Electra.setDefaultThreads((int) n + 1),
                    "already " + n);
            assertEquals(n, Electra.defaultThreads());
            for (SessionOptions o : new SessionOptions[] {new SessionOptions().threads(1),
                    new SessionOptions().threads(2).ownPool(true)}) {
                try (Session s = Session.create(m, o)) {
                    assertSameBits(o + " vs default", s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                            want);
                }
            }
        }
    }

    /** A session with explicit CPU options computes exactly what a default session computes. */
    @Test
    public void sessionWithOptionsMatchesDefault() {
        for (String c : Fixtures.CASES) {
            Fixtures.Expected e = expected(c);
            try (Model m = Model.load(fixture(c, "discriminator"))) {
                float[] want;
                try (Session s = m.newSession()) {
                    want = s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen);
                }
                assertClose(c + " default session", want, e.floats("disc_logits"));
                Object[] forms = {new SessionOptions().device("cpu").threads(1), "{\"device\": \"cpu\", \"threads\": 1}",
                    "{\"threads\": 3}", new SessionOptions(), null,
                    new SessionOptions().setAll(Collections.singletonMap("threads", 2))};
                for (Object o : forms) {
                    try (Session s = o instanceof String ? Session.create(m, (String) o)
                            : Session.create(m, (SessionOptions) o)) {
                        assertSameBits(c + " " + o + " vs default", s.discriminate(e.ids, e.mask, e.types, e.batch,
                                e.seqLen), want);
                    }
                }
            }
        }
    }

    @Test
    public void sessionDeviceErrors() {
        Fixtures.Expected e = expected("relu_act");
        try (Model m = Model.load(fixture("relu_act"))) {
            long n = cudaCount();
            if (n < 0) {
                for (String dev : new String[] {"cuda", "cuda:0"}) {
                    expectError(dev, Status.CUDA, () -> Session.create(m, new SessionOptions().device(dev)));
                }
            } else {
                try (Session s = Session.create(m, new SessionOptions().device("cuda:0"))) {
                    assertClose("cuda:0", s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                            e.floats("disc_logits"));
                }
                expectError("a GPU past the last", Status.CUDA,
                        () -> Session.create(m, new SessionOptions().device("cuda:" + n)));
            }
            expectError("device tpu", Status.INVALID_ARGUMENT,
                    () -> Session.create(m, new SessionOptions().device("tpu")), "tpu");
            expectError("device cuda:x", Status.INVALID_ARGUMENT,
                    () -> Session.create(m, "{\"device\": \"cuda:x\"}"), "cuda:x");
            expectError("unknown key", Status.INVALID_ARGUMENT,
                    () -> Session.create(m, new SessionOptions().set("devic", "cpu")), "devic");
            expectError("negative threads", Status.INVALID_ARGUMENT,
                    () -> Session.create(m, new SessionOptions().threads(-1)));
            expectError("malformed JSON", Status.INVALID_ARGUMENT, () -> Session.create(m, "{\"device\": \"cpu\","));
            expectError("unencodable options", Status.INVALID_ARGUMENT,
                    () -> Session.create(m, new SessionOptions().set("x", new Thread())), "options");
            expectError("NUL in options", Status.INVALID_ARGUMENT,
                    () -> Session.create(m, "{\"device\": \"cpu\0\"}"), "NUL");
            expectError("null model", Status.INVALID_HANDLE, () -> Session.create(null, (SessionOptions) null));
            Model closed = Model.load(fixture("relu_act"));
            closed.close();
            expectError("closed model", Status.INVALID_HANDLE,
                    () -> Session.create(closed, new SessionOptions().device("cpu")), "closed");
            // The refusals left the model usable.
            try (Session s = Session.create(m, new SessionOptions().threads(1))) {
                assertClose("after refusals", s.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                        e.floats("disc_logits"));
            }
        }
    }

    @Test
    public void trainerAndFineTunerDevice() {
        try (Trainer a = Trainer.create("tiny", TrainerTest.tinyOptions());
                Trainer b = Trainer.create("tiny", TrainerTest.tinyOptions().device("cpu"))) {
            assertEquals(TrainerTest.step(a, 0), TrainerTest.step(b, 0));
        }
        expectError("trainer device tpu", Status.INVALID_ARGUMENT,
                () -> Trainer.create("tiny", TrainerTest.tinyOptions().device("tpu")), "tpu");
        expectError("fine-tuner device tpu", Status.INVALID_ARGUMENT,
                () -> FineTuner.create(fixture("relu_act", "discriminator"), 2, new FineTuneOptions().device("tpu")),
                "tpu");
        if (cudaCount() < 0) {
            expectError("trainer device cuda", Status.CUDA,
                    () -> Trainer.create("tiny", TrainerTest.tinyOptions().device("cuda")));
            expectError("fine-tuner device cuda:0", Status.CUDA,
                    () -> FineTuner.create(fixture("relu_act", "discriminator"), 2,
                            new FineTuneOptions().device("cuda:0")));
        }
    }

    /** Resume with other options: the thread count does not change the numbers. */
    @Test
    public void trainerResumeWithOptions() throws Exception {
        String ckpt = new File(tmp.getRoot(), "ckpt").getPath();
        StepStats a2;
        StepStats a3;
        try (Trainer tr = Trainer.create("tiny", TrainerTest.tinyOptions())) {
            TrainerTest.step(tr, 0);
            TrainerTest.step(tr, 1);
            tr.save(ckpt);
            a2 = TrainerTest.step(tr, 2);
            a3 = TrainerTest.step(tr, 3);
        }
        Object[] forms = {new ResumeOptions().threads(2), new ResumeOptions().device("cpu").threads(2),
            "{\"threads\": 2}", null};
        for (Object o : forms) {
            try (Trainer rt = o instanceof String ? Trainer.resume(ckpt, (String) o)
                    : Trainer.resume(ckpt, (ResumeOptions) o)) {
                assertEquals(String.valueOf(o), a2, TrainerTest.step(rt, 2));
                assertEquals(String.valueOf(o), a3, TrainerTest.step(rt, 3));
            }
        }
        expectError("resume on tpu", Status.INVALID_ARGUMENT,
                () -> Trainer.resume(ckpt, new ResumeOptions().device("tpu")), "tpu");
        expectError("resume with a trainer-only key", Status.INVALID_ARGUMENT,
                () -> Trainer.resume(ckpt, new ResumeOptions().set("learning_rate", 0.1)), "learning_rate");
        String missing = new File(tmp.getRoot(), "nothing-here").getPath();
        expectError("resume from a missing dir", Status.IO,
                () -> Trainer.resume(missing, new ResumeOptions().threads(2)), "nothing-here");
        expectError("NUL in dir", Status.INVALID_ARGUMENT, () -> Trainer.resume("a\0b"), "NUL");
        if (cudaCount() < 0) {
            expectError("resume on cuda", Status.CUDA, () -> Trainer.resume(ckpt, new ResumeOptions().device("cuda")));
        }
        assertTrue(new File(ckpt, "trainer.safetensors").isFile());
    }

    @Test
    public void sessionMemoryBudget() {
        Fixtures.Expected e = expected("relu_act");
        try (Model m = Model.load(fixture("relu_act"));
                Session tight = Session.create(m, new SessionOptions().maxMemoryBytes(1024));
                Session roomy = Session.create(m, new SessionOptions().maxMemoryBytes(1L << 30))) {
            expectError("1 KiB budget", Status.OUT_OF_MEMORY,
                    () -> tight.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen), "max_memory_bytes");
            assertClose("1 GiB budget", roomy.discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen),
                    e.floats("disc_logits"));
        }
    }
}
