package dev.electra;

import static dev.electra.Fixtures.expectError;
import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** Mirrors bindings/go/allreduce_test.go: data-parallel ranks on threads of this JVM. */
public class AllReduceTest {
    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    /** A sum all-reduce between threads: publish, wait, sum in rank order, wait, write. */
    static final class Group {
        final CyclicBarrier barrier;
        final float[][] bufs;
        volatile RuntimeException fail;
        volatile int calls;

        Group(int n) {
            barrier = new CyclicBarrier(n);
            bufs = new float[n][];
        }

        AllReduce rank(int r) {
            return data -> {
                if (fail != null) {
                    throw fail;
                }
                if (r == 0) {
                    calls++;
                }
                bufs[r] = data;
                barrier.await(60, TimeUnit.SECONDS);
                float[] sum = new float[data.length];
                for (float[] b : bufs) {
                    for (int i = 0; i < sum.length; i++) {
                        sum[i] += b[i];
                    }
                }
                barrier.await(60, TimeUnit.SECONDS);
                System.arraycopy(sum, 0, data, 0, sum.length);
            };
        }
    }

    static TrainerOptions distOptions() {
        return TrainerTest.tinyOptions().learningRate(2e-3).warmupSteps(1).totalSteps(100);
    }

    /** Rank r's step k: its half of the rows of trainBatch(k). */
    static StepStats halfStep(Trainer tr, int r, int k) {
        int half = TrainerTest.B / 2;
        int[][] b = TrainerTest.trainBatch(k);
        int lo = r * half * TrainerTest.T;
        int hi = (r + 1) * half * TrainerTest.T;
        return tr.step(Arrays.copyOfRange(b[0], lo, hi), Arrays.copyOfRange(b[1], lo, hi),
                Arrays.copyOfRange(b[2], lo, hi), half, TrainerTest.T);
    }

    static byte[] weights(String dir, String tower) throws Exception {
        return Files.readAllBytes(new File(dir, tower + "/model.safetensors").toPath());
    }

    /**
     * Two ranks stepping halves of each batch are one trainer with accumulate_steps 2 on the whole
     * batch; an all-reduce that throws fails the step on both ranks with DISTRIBUTED.
     */
    @Test
    public void twoRanks() throws Exception {
        int steps = 3;
        Group g = new Group(2);
        Trainer[] ranks = {Trainer.create("tiny", distOptions().set("rank", 0).set("world_size", 2)),
            Trainer.create("tiny", distOptions().set("rank", 1).set("world_size", 2))};
        try (Trainer r0 = ranks[0]; Trainer r1 = ranks[1];
                Trainer one = Trainer.create("tiny", distOptions().set("accumulate_steps", 2))) {
            StepStats[][] stats = new StepStats[2][steps];
            Fixtures.onThreads(2, r -> {
                ranks[r].setAllReduce(g.rank(r));
                for (int k = 0; k < steps; k++) {
                    stats[r][k] = halfStep(ranks[r], r, k);
                }
            });
            assertTrue("the all-reduce ran", g.calls > 0);
            for (int k = 0; k < steps; k++) {
                StepStats want = TrainerTest.step(one, k);
                assertEquals("step " + k + " rank 0", want, stats[0][k]);
                assertEquals("step " + k + " rank 1", want, stats[1][k]);
            }
            String want = new File(tmp.getRoot(), "one").getPath();
            one.export(want);
            for (int r = 0; r < 2; r++) {
                String dir = new File(tmp.getRoot(), "rank" + r).getPath();
                ranks[r].export(dir);
                for (String tower : new String[] {"discriminator", "generator"}) {
                    assertArrayEquals("rank " + r + " " + tower, weights(want, tower), weights(dir, tower));
                }
            }

            // An all-reduce that throws fails the step on every rank with DISTRIBUTED, its
            // exception in the message; the ranks then take no more steps (resume to go on).
            g.fail = new IllegalStateException("network down");
            Fixtures.onThreads(2, r -> expectError("rank " + r, Status.DISTRIBUTED,
                    () -> halfStep(ranks[r], r, steps), "network down"));
            g.fail = null;
            Fixtures.onThreads(2, r -> expectError("rank " + r + " after a failed collective", Status.DISTRIBUTED,
                    () -> halfStep(ranks[r], r, steps)));
        }
    }

    @Test
    public void errors() {
        try (Trainer tr = Trainer.create("tiny", TrainerTest.tinyOptions())) {
            expectError("null all-reduce", Status.NULL_POINTER, () -> tr.setAllReduce(null), "allReduce");
            // A trainer without rank/world_size: one rank of one; its steps still work.
            try {
                tr.setAllReduce(data -> { });
            } catch (ElectraException e) {
                assertTrue(e.getMessage(), e.status() == Status.INVALID_ARGUMENT || e.status() == Status.DISTRIBUTED);
            }
            assertEquals(1, TrainerTest.step(tr, 0).step());
        }
        Trainer closed = Trainer.create("tiny", TrainerTest.tinyOptions());
        closed.close();
        expectError("closed trainer", Status.INVALID_HANDLE, () -> closed.setAllReduce(data -> { }), "closed");
    }
}
