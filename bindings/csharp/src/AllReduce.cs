using System;
using System.Runtime.InteropServices;

namespace Electra
{
    /// <summary>A host's sum all-reduce for data-parallel training (see Trainer.SetAllReduce):
    /// replace data, on every rank, by the element-wise sum of every rank's data. Every rank must
    /// get the same bits back, so sum in a fixed order (rank 0's buffer first). Throw to fail the
    /// call. data is valid during the call only: the binding copies it back to the library
    /// afterwards and may reuse the array for the next call.</summary>
    public delegate void AllReduce(float[] data);

    /// <summary>What the library calls for a Trainer's AllReduce: copies the library's buffer
    /// into a managed array and back, and turns any exception into a nonzero result (an
    /// exception must not unwind through the library's frames).</summary>
    internal sealed class AllReduceBridge
    {
        private readonly AllReduce callback;
        // The largest array so far, reused: the gradients, reduced every step, are the largest
        // buffer, so steady training allocates only the few-float status buffers.
        private float[] largest = new float[0];
        private Exception failure;

        internal AllReduceBridge(AllReduce callback)
        {
            this.callback = callback;
            Fn = Invoke;
        }

        /// <summary>The delegate handed to the library; alive as long as this bridge.</summary>
        internal Native.AllReduceFn Fn { get; private set; }

        /// <summary>The exception the callback threw during the last failed call, cleared.</summary>
        internal Exception TakeFailure()
        {
            Exception e = failure;
            failure = null;
            return e;
        }

        private int Invoke(IntPtr data, UIntPtr count, IntPtr userData)
        {
            try
            {
                ulong n = count.ToUInt64();
                if (n > int.MaxValue)
                    throw new OverflowException("all-reduce of " + n + " floats: more than a .NET array holds");
                int len = (int)n;
                float[] buf = len == largest.Length ? largest : new float[len];
                if (len > largest.Length)
                    largest = buf;
                if (len > 0)
                    Marshal.Copy(data, buf, 0, len);
                callback(buf);
                if (len > 0)
                    Marshal.Copy(buf, 0, data, len);
                return 0;
            }
            catch (Exception e)
            {
                failure = e;
                return 1;
            }
        }
    }
}
