using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Electra
{
    /// <summary>ELECTRA pre-training state: weights, optimizer moments, step count, RNG.
    /// Step, Save, Export and GetModel are serialised by a lock; Cancel may be called from any
    /// thread while another steps.</summary>
    public sealed class Trainer : IDisposable
    {
        private readonly TrainerHandle handle;
        private readonly object gate = new object();
        // The all-reduce the library calls back: referenced here so that the delegate it holds
        // lives as long as the native trainer may call it (until replaced or disposed).
        private AllReduceBridge allReduce;

        private Trainer(TrainerHandle h)
        {
            handle = h;
        }

        /// <summary>Creates a trainer. init is a preset ("tiny", "small", "base", "large") or a
        /// model directory; optionsJson is null or a JSON object (see electra.h). Unknown keys and
        /// bad values throw ElectraException with Status.InvalidArgument naming the key. The
        /// device key ("cpu", the default; "cuda" or "cuda:N") picks where training runs; a
        /// device not compiled in or not present throws with Status.Cuda.</summary>
        public static Trainer Create(string init, string optionsJson)
        {
            Library.CheckAbi();
            byte[] i = Native.Utf8Z(init, "init");
            byte[] o = optionsJson == null ? null : Native.Utf8Z(optionsJson, "optionsJson");
            TrainerHandle h;
            int st = Native.electra_trainer_new(i, o, out h);
            Native.CheckCreated(st, h);
            return new Trainer(h);
        }

        public static Trainer Create(string init)
        {
            return Create(init, (string)null);
        }

        /// <summary>Creates a trainer with options given as a dictionary (values: numbers, bools,
        /// strings, arrays or lists of them), serialised to JSON.</summary>
        public static Trainer Create(string init, IDictionary<string, object> options)
        {
            return Create(init, options == null ? null : Json.Write(options));
        }

        /// <summary>Restores a trainer saved by Save, on the device and thread count it was
        /// created with; training continues bit-identically.</summary>
        public static Trainer Resume(string dir)
        {
            return Resume(dir, (string)null);
        }

        /// <summary>Resume elsewhere: optionsJson is null or a JSON object with the keys device
        /// ("cpu", "cuda", "cuda:N"), threads and rank; an absent key keeps the checkpoint's
        /// value (rank: 0). A run begun on a GPU continues on a machine without one with
        /// {"device": "cpu"}. In a data-parallel run every rank resumes the same checkpoint with
        /// its own {"rank": r}, then calls SetAllReduce again.</summary>
        public static Trainer Resume(string dir, string optionsJson)
        {
            Library.CheckAbi();
            byte[] d = Native.Utf8Z(dir, "dir");
            byte[] o = optionsJson == null ? null : Native.Utf8Z(optionsJson, "optionsJson");
            TrainerHandle h;
            int st = Native.electra_trainer_resume_with_options(d, o, out h);
            Native.CheckCreated(st, h);
            return new Trainer(h);
        }

        /// <summary>Resume(dir, optionsJson) with the options as a dictionary.</summary>
        public static Trainer Resume(string dir, IDictionary<string, object> options)
        {
            return Resume(dir, options == null ? null : Json.Write(options));
        }

        public bool IsDisposed { get { return handle.IsClosed; } }

        /// <summary>One pre-training step on batch*seqLen token ids (mask and types may be null).
        /// A refused step (bad input, Status.Numeric, Status.Cancelled) leaves the trainer as it
        /// was and usable.</summary>
        public unsafe StepStats Step(int[] ids, int[] mask, int[] types, int batch, int seqLen)
        {
            Inputs.Check(ids, mask, types, batch, seqLen);
            var stats = new StepStats();
            stats.structSize = (uint)Marshal.SizeOf(typeof(StepStats));
            lock (gate)
            {
                ThrowIfDisposed();
                int st;
                fixed (int* pi = ids)
                fixed (int* pm = mask)
                fixed (int* pt = types)
                {
                    st = Native.electra_trainer_step(handle, pi, pm, pt, Native.Size(batch), Native.Size(seqLen), ref stats);
                }
                CheckCollective(st, allReduce);
                GC.KeepAlive(this);
            }
            return stats;
        }

        public StepStats Step(int[] ids, int batch, int seqLen)
        {
            return Step(ids, null, null, batch, seqLen);
        }

        /// <summary>Writes the full training state to dir/trainer.safetensors, atomically.</summary>
        public void Save(string dir)
        {
            byte[] d = Native.Utf8Z(dir, "dir");
            lock (gate)
            {
                ThrowIfDisposed();
                CheckCollective(Native.electra_trainer_save(handle, d), allReduce);
                GC.KeepAlive(this);
            }
        }

        /// <summary>Makes this trainer one rank of a data-parallel run whose gradients callback
        /// sums across ranks (over MPI, Gloo, NCCL through host memory, or threads of this
        /// process). Create the trainer with the options "rank" (0..world_size-1, distinct per
        /// rank) and "world_size"; with "accumulate_steps" k each rank also splits its batch into
        /// k micro-batches. N ranks of B rows give the step of one trainer with
        /// accumulate_steps N on the N·B rows, bit for bit.
        ///
        /// The contract is collective: every rank calls SetAllReduce, before its first step or
        /// right after resuming (it checks that the ranks start from the same weights, options
        /// and step: Status.Distributed otherwise), and from then on calls Step and Save in the
        /// same order as the others (each Step on its own batch; Save is written by rank 0 into
        /// the directory rank 0 names). callback runs on the thread that called Step, Save or
        /// SetAllReduce, several times per call, with arrays of any length. A failure on one
        /// rank fails the step on every rank and changes nothing. An exception thrown by
        /// callback is caught (it never unwinds through the library) and fails the call with an
        /// ElectraException of Status.Distributed whose InnerException it is; the trainer then
        /// takes no further step (the ranks may disagree: resume from a checkpoint). A second
        /// call replaces the callback; the trainer keeps it alive until disposed.</summary>
        public void SetAllReduce(AllReduce callback)
        {
            if (callback == null)
                throw new ArgumentNullException("callback");
            var bridge = new AllReduceBridge(callback);
            lock (gate)
            {
                ThrowIfDisposed();
                int st = Native.electra_trainer_set_allreduce(handle, bridge.Fn, IntPtr.Zero);
                // On failure the library keeps the previous all-reduce, if any, and so do we.
                CheckCollective(st, bridge);
                allReduce = bridge;
                GC.KeepAlive(this);
            }
        }

        /// <summary>Native.Check for calls that may run an all-reduce: the exception the
        /// callback threw becomes the InnerException.</summary>
        private static void CheckCollective(int status, AllReduceBridge bridge)
        {
            Exception cause = bridge == null ? null : bridge.TakeFailure();
            if (status == 0)
                return;
            string msg = Native.LastErrorMessage();
            throw new ElectraException((Status)status, msg, (Status)status == Status.Distributed ? cause : null);
        }

        /// <summary>Writes the model in the pair layout (dir/discriminator, dir/generator).</summary>
        public void Export(string dir)
        {
            byte[] d = Native.Utf8Z(dir, "dir");
            lock (gate)
            {
                ThrowIfDisposed();
                Native.Check(Native.electra_trainer_export(handle, d));
            }
        }

        /// <summary>A snapshot of the current weights for inference (later steps do not change
        /// it). Dispose it when done.</summary>
        public Model GetModel()
        {
            ModelHandle h;
            lock (gate)
            {
                ThrowIfDisposed();
                int st = Native.electra_trainer_get_model(handle, out h);
                Native.CheckCreated(st, h);
            }
            return new Model(h);
        }

        /// <summary>Asks the running step, or the next one, to stop with Status.Cancelled. Safe
        /// from any thread; a no-op on a disposed trainer.</summary>
        public void Cancel()
        {
            try
            {
                Native.electra_trainer_cancel(handle);
            }
            catch (ObjectDisposedException)
            {
            }
        }

        /// <summary>Frees the trainer (deferred by the SafeHandle until a running call returns).</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        private void ThrowIfDisposed()
        {
            if (handle.IsClosed)
                throw new ObjectDisposedException("Electra.Trainer");
        }
    }

    /// <summary>A minimal JSON writer for trainer, fine-tuner and session options.</summary>
    internal static class Json
    {
        internal static string Write(object value)
        {
            var sb = new StringBuilder();
            Append(sb, value);
            return sb.ToString();
        }

        private static void Append(StringBuilder sb, object v)
        {
            if (v == null) { sb.Append("null"); return; }
            if (v is bool) { sb.Append((bool)v ? "true" : "false"); return; }
            if (v is string) { AppendString(sb, (string)v); return; }
            if (v is double || v is float)
            {
                double d = Convert.ToDouble(v, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d))
                    throw new ArgumentException("options: JSON has no NaN or infinity");
                sb.Append(v is float ? ((float)v).ToString("R", CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (v is sbyte || v is byte || v is short || v is ushort || v is int || v is uint || v is long || v is ulong || v is decimal)
            {
                sb.Append(Convert.ToString(v, CultureInfo.InvariantCulture));
                return;
            }
            var dict = v as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                bool first = true;
                foreach (DictionaryEntry e in dict)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    AppendString(sb, Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Append(sb, e.Value);
                }
                sb.Append('}');
                return;
            }
            var list = v as IEnumerable;
            if (list != null)
            {
                sb.Append('[');
                bool first = true;
                foreach (object e in list)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Append(sb, e);
                }
                sb.Append(']');
                return;
            }
            throw new ArgumentException("options: cannot write a " + v.GetType().Name + " as JSON");
        }

        private static void AppendString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.AppendFormat("\\u{0:x4}", (int)c);
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }
}
