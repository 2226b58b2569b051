package dev.electra;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.Test;

/** The safety net behind every handle, both implementations (the phantom one is older Android's). */
public class ReclaimerTest {
    private static void awaitCount(AtomicInteger n, int want) throws InterruptedException {
        for (int i = 0; i < 200 && n.get() < want; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertEquals(want, n.get());
    }

    @Test
    public void phantomRunsOnceForUnreachableObjects() throws Exception {
        AtomicInteger ran = new AtomicInteger();
        for (int i = 0; i < 10; i++) {
            Reclaimer.Phantom.register(new Object(), ran::incrementAndGet);
        }
        awaitCount(ran, 10);
        Thread.sleep(50);
        assertEquals(10, ran.get());
    }

    @Test
    public void explicitCleanRunsOnce() throws Exception {
        AtomicInteger ran = new AtomicInteger();
        Object owner = new Object();
        Reclaimer.Registration a = Reclaimer.Phantom.register(owner, ran::incrementAndGet);
        Reclaimer.Registration b = Reclaimer.register(owner, ran::incrementAndGet);
        a.clean();
        a.clean();
        b.clean();
        b.clean();
        assertEquals(2, ran.get());
        Reclaimer.fence(owner);
        owner = null;
        System.gc();
        Thread.sleep(20);
        assertEquals(2, ran.get());
    }

    @Test
    public void handlesOfForgottenModelsAreFreed() throws Exception {
        assertTrue(Reclaimer.kind(), Reclaimer.kind().equals("cleaner") || Reclaimer.kind().equals("phantom"));
        // A forgotten model's handle is freed by the safety net: the native side then reports
        // the handle as not live when given its value directly.
        long[] handle = new long[1];
        Runnable forget = () -> handle[0] = Model.load(Fixtures.fixture("relu_act", "discriminator")).handle();
        forget.run();
        for (int i = 0; i < 200; i++) {
            System.gc();
            Thread.sleep(10);
            try {
                Native.modelInfo(handle[0]);
            } catch (ElectraException e) {
                assertEquals(Status.INVALID_HANDLE, e.status());
                return;
            }
        }
        throw new AssertionError("the forgotten model was never freed");
    }
}
