using System;
using System.Collections.Generic;

namespace Electra
{
    /// <summary>Inference over a Model. Calls on one Session are serialised by a lock; for
    /// parallelism give each thread its own Session over the shared Model.
    ///
    /// Inputs: ids holds batch*seqLen token ids, row-major; mask (1 = token, 0 = padding) and
    /// types (token type ids) may be null, meaning all ones and all zeros. Arrays are pinned and
    /// passed without copying.</summary>
    public sealed class Session : IDisposable
    {
        private enum Kind { Discriminate, GeneratorLogits, HiddenStates, Classify }

        private readonly SessionHandle handle;
        private readonly ModelInfo info;
        private readonly object gate = new object();

        /// <summary>A session over model on the CPU, one worker thread per core.</summary>
        public Session(Model model)
        {
            if (model == null)
                throw new ArgumentNullException("model");
            model.ThrowIfDisposed();
            SessionHandle h;
            int st = Native.electra_session_new(model.Handle, out h);
            Native.CheckCreated(st, h);
            handle = h;
            info = model.Info;
        }

        /// <summary>A session over model with options: optionsJson is null (the defaults, as
        /// Session(model)) or a JSON object with the keys device ("cpu", the default; "cuda" or
        /// "cuda:N") and threads (host worker threads, 0 = one per core, the default). A device
        /// that is not compiled in or not present throws ElectraException with Status.Cuda;
        /// unknown keys and bad values, Status.InvalidArgument.</summary>
        public Session(Model model, string optionsJson)
        {
            if (model == null)
                throw new ArgumentNullException("model");
            byte[] o = optionsJson == null ? null : Native.Utf8Z(optionsJson, "optionsJson");
            model.ThrowIfDisposed();
            SessionHandle h;
            int st = Native.electra_session_new_with_options(model.Handle, o, out h);
            Native.CheckCreated(st, h);
            handle = h;
            info = model.Info;
        }

        /// <summary>Session(model, optionsJson) with the options as a dictionary
        /// (e.g. { "device", "cpu" }, { "threads", 2 }), serialised to JSON.</summary>
        public Session(Model model, IDictionary<string, object> options)
            : this(model, options == null ? null : Json.Write(options))
        {
        }

        /// <summary>The dimensions of the session's model.</summary>
        public ModelInfo Info { get { return info; } }

        public bool IsDisposed { get { return handle.IsClosed; } }

        /// <summary>batch*seqLen replaced-token-detection logits (&gt; 0 means "replaced").</summary>
        public float[] Discriminate(int[] ids, int[] mask, int[] types, int batch, int seqLen)
        {
            return Run(Kind.Discriminate, ids, mask, types, batch, seqLen, null);
        }

        public float[] Discriminate(int[] ids, int batch, int seqLen)
        {
            return Run(Kind.Discriminate, ids, null, null, batch, seqLen, null);
        }

        /// <summary>Discriminate into output (at least batch*seqLen floats).</summary>
        public void Discriminate(int[] ids, int[] mask, int[] types, int batch, int seqLen, float[] output)
        {
            Run(Kind.Discriminate, ids, mask, types, batch, seqLen, NotNull(output));
        }

        /// <summary>batch*seqLen*VocabSize masked-LM logits, row-major. A model without a
        /// generator throws ElectraException with Status.Unsupported.</summary>
        public float[] GeneratorLogits(int[] ids, int[] mask, int[] types, int batch, int seqLen)
        {
            return Run(Kind.GeneratorLogits, ids, mask, types, batch, seqLen, null);
        }

        public void GeneratorLogits(int[] ids, int[] mask, int[] types, int batch, int seqLen, float[] output)
        {
            Run(Kind.GeneratorLogits, ids, mask, types, batch, seqLen, NotNull(output));
        }

        /// <summary>The last hidden states: batch*seqLen*HiddenSize floats, row-major.</summary>
        public float[] HiddenStates(int[] ids, int[] mask, int[] types, int batch, int seqLen)
        {
            return Run(Kind.HiddenStates, ids, mask, types, batch, seqLen, null);
        }

        public void HiddenStates(int[] ids, int[] mask, int[] types, int batch, int seqLen, float[] output)
        {
            Run(Kind.HiddenStates, ids, mask, types, batch, seqLen, NotNull(output));
        }

        /// <summary>batch*NumLabels classification logits, row-major, for a model with a
        /// classification head (else ElectraException with Status.Unsupported).</summary>
        public float[] Classify(int[] ids, int[] mask, int[] types, int batch, int seqLen)
        {
            return Run(Kind.Classify, ids, mask, types, batch, seqLen, null);
        }

        public void Classify(int[] ids, int[] mask, int[] types, int batch, int seqLen, float[] output)
        {
            Run(Kind.Classify, ids, mask, types, batch, seqLen, NotNull(output));
        }

        public void Dispose()
        {
            handle.Dispose();
        }

        private static float[] NotNull(float[] output)
        {
            if (output == null)
                throw new ArgumentNullException("output");
            return output;
        }

        private unsafe float[] Run(Kind kind, int[] ids, int[] mask, int[] types, int batch, int seqLen, float[] output)
        {
            long n = Inputs.Check(ids, mask, types, batch, seqLen);
            long need;
            switch (kind)
            {
                case Kind.GeneratorLogits: need = n * info.VocabSize; break;
                case Kind.HiddenStates: need = n * info.HiddenSize; break;
                case Kind.Classify:
                    if (info.NumLabels == 0)
                        throw new ElectraException(Status.Unsupported, "unsupported: the model has no classification head (num_labels = 0)");
                    need = (long)batch * info.NumLabels;
                    break;
                default: need = n; break;
            }
            if (output == null)
            {
                if (need > int.MaxValue)
                    throw new ArgumentException("the result would exceed the largest array");
                output = new float[need];
            }
            else if (output.Length < need)
            {
                throw new ArgumentException(string.Format("output holds {0} floats, {1} needed", output.Length, need), "output");
            }
            lock (gate)
            {
                if (handle.IsClosed)
                    throw new ObjectDisposedException("Electra.Session");
                int st;
                fixed (int* pi = ids)
                fixed (int* pm = mask)
                fixed (int* pt = types)
                fixed (float* po = output)
                {
                    UIntPtr b = Native.Size(batch), t = Native.Size(seqLen), len = Native.Size(output.Length);
                    switch (kind)
                    {
                        case Kind.Discriminate:
                            st = Native.electra_session_discriminate(handle, pi, pm, pt, b, t, po, len);
                            break;
                        case Kind.GeneratorLogits:
                            st = Native.electra_session_generator_logits(handle, pi, pm, pt, b, t, po, len);
                            break;
                        case Kind.HiddenStates:
                            st = Native.electra_session_hidden_states(handle, pi, pm, pt, b, t, po, len);
                            break;
                        default:
                            st = Native.electra_session_classify(handle, pi, pm, pt, b, t, po, len);
                            break;
                    }
                }
                Native.Check(st);
            }
            return output;
        }
    }
}
