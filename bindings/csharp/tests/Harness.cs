// A tiny test runner: every static method of Tests marked [Test] runs in declaration order;
// a test fails by throwing. Prints one line per test and closes with "N passed, N failed".
// Usage: Tests.exe [substring-filter]

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Reflection;

namespace Electra.Tests
{
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class TestAttribute : Attribute { }

    internal sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    internal static class Assert
    {
        public static void True(bool condition, string message)
        {
            if (!condition)
                throw new AssertionException(message);
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertionException(string.Format("{0}: expected {1}, got {2}", what, expected, actual));
        }

        public static TException Throws<TException>(string what, Action action) where TException : Exception
        {
            try
            {
                action();
            }
            catch (TException e)
            {
                return e;
            }
            catch (Exception e)
            {
                throw new AssertionException(string.Format("{0}: expected {1}, got {2}: {3}", what,
                    typeof(TException).Name, e.GetType().Name, e.Message));
            }
            throw new AssertionException(string.Format("{0}: expected {1}, nothing was thrown", what, typeof(TException).Name));
        }

        /// <summary>Expects an ElectraException with the status and a message holding every fragment.</summary>
        public static ElectraException Fails(string what, Status status, Action action, params string[] fragments)
        {
            var e = Throws<ElectraException>(what, action);
            if (e.Status != status)
                throw new AssertionException(string.Format("{0}: status {1}, expected {2} ({3})", what, e.Status, status, e.NativeMessage));
            foreach (var f in fragments)
                if (!e.NativeMessage.Contains(f))
                    throw new AssertionException(string.Format("{0}: message \"{1}\" lacks \"{2}\"", what, e.NativeMessage, f));
            if (!e.Message.StartsWith("electra: "))
                throw new AssertionException(what + ": Message = " + e.Message);
            return e;
        }
    }

    internal static class Harness
    {
        private static int Main(string[] args)
        {
            string filter = args.Length > 0 ? args[0] : null;
            var tests = typeof(Tests).GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
                .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
                .OrderBy(m => m.MetadataToken)
                .Where(m => filter == null || m.Name.Contains(filter))
                .ToList();
            int passed = 0, failed = 0;
            var total = Stopwatch.StartNew();
            foreach (var m in tests)
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    m.Invoke(null, null);
                    passed++;
                    Console.WriteLine("PASS {0} ({1} ms)", m.Name, sw.ElapsedMilliseconds);
                }
                catch (TargetInvocationException e)
                {
                    failed++;
                    var inner = e.InnerException ?? e;
                    Console.WriteLine("FAIL {0} ({1} ms): {2}", m.Name, sw.ElapsedMilliseconds,
                        inner is AssertionException ? inner.Message : inner.ToString());
                }
            }
            try
            {
                Tests.Cleanup();
            }
            catch (Exception e)
            {
                Console.WriteLine("cleanup: " + e.Message);
            }
            Console.WriteLine("({0} tests in {1:F1} s)", tests.Count, total.Elapsed.TotalSeconds);
            Console.WriteLine("{0} passed, {1} failed", passed, failed);
            return failed == 0 && passed > 0 ? 0 : 1;
        }
    }
}
