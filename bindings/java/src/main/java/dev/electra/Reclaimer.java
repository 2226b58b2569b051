package dev.electra;

import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * Runs an action once an object becomes unreachable (the safety net behind {@link NativeHandle}):
 * {@code java.lang.ref.Cleaner} where the platform has it (Java 9+, Android API 33+), else the
 * same thing by hand, a {@link PhantomReference} queue drained by a daemon thread (older Android).
 * Also {@link #fence(Object)}: {@code Reference.reachabilityFence} (Android API 28+), else the
 * pre-Java 9 idiom, an empty {@code synchronized} block on the object.
 */
final class Reclaimer {
    private Reclaimer() {}

    /** A registration: {@link #clean()} runs the action now, at most once in all. */
    interface Registration {
        void clean();
    }

    private static final boolean HAS_FENCE = hasMethod(Reference.class, "reachabilityFence", Object.class);
    private static final boolean HAS_CLEANER = hasClass("java.lang.ref.Cleaner")
            && !"phantom".equals(System.getProperty("electra.cleaner"));

    private static boolean hasMethod(Class<?> c, String name, Class<?>... args) {
        try {
            c.getMethod(name, args);
            return true;
        } catch (NoSuchMethodException | SecurityException e) {
            return false;
        }
    }

    private static boolean hasClass(String name) {
        try {
            Class.forName(name);
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    /** Keeps {@code o} reachable until this point (after a native call that uses its handle). */
    static void fence(Object o) {
        if (HAS_FENCE) {
            Reference.reachabilityFence(o);
        } else {
            synchronized (o) {
                // The monitor keeps o reachable up to here (JLS 12.6.1).
                o.hashCode();
            }
        }
    }

    /** Runs {@code action} (which must not reach {@code owner}) once {@code owner} is unreachable. */
    static Registration register(Object owner, Runnable action) {
        return HAS_CLEANER ? JdkCleaner.register(owner, action) : Phantom.register(owner, action);
    }

    /** Which implementation is in use ("cleaner" or "phantom"), for tests. */
    static String kind() {
        return HAS_CLEANER ? "cleaner" : "phantom";
    }

    /** java.lang.ref.Cleaner, referenced only here so that platforms without it never load it. */
    private static final class JdkCleaner {
        private static final java.lang.ref.Cleaner CLEANER = java.lang.ref.Cleaner.create();

        static Registration register(Object owner, Runnable action) {
            java.lang.ref.Cleaner.Cleanable c = CLEANER.register(owner, action);
            return c::clean;
        }
    }

    /** A phantom-reference cleaner for platforms without java.lang.ref.Cleaner. */
    static final class Phantom extends PhantomReference<Object> implements Registration {
        private static final ReferenceQueue<Object> QUEUE = new ReferenceQueue<>();
        /** Keeps the registrations themselves reachable until they run. */
        private static final Set<Phantom> LIVE = Collections.synchronizedSet(
                Collections.newSetFromMap(new IdentityHashMap<>()));

        static {
            Thread t = new Thread(Phantom::drain, "electra-cleaner");
            t.setDaemon(true);
            t.start();
        }

        private Runnable action;

        private Phantom(Object owner, Runnable action) {
            super(owner, QUEUE);
            this.action = action;
        }

        static Registration register(Object owner, Runnable action) {
            Phantom p = new Phantom(owner, action);
            LIVE.add(p);
            return p;
        }

        @Override
        public void clean() {
            Runnable a;
            synchronized (this) {
                a = action;
                action = null;
            }
            if (a != null) {
                LIVE.remove(this);
                clear();
                a.run();
            }
        }

        private static void drain() {
            while (true) {
                try {
                    ((Phantom) QUEUE.remove()).clean();
                } catch (InterruptedException e) {
                    // keep draining: the thread lives as long as the process
                } catch (Throwable t) {
                    // an action failed; the others still run
                }
            }
        }
    }
}
