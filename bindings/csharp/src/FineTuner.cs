using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Electra
{
    /// <summary>Trains a sequence classifier (an ELECTRA encoder plus a classification head).
    /// Calls are serialised by a lock.</summary>
    public sealed class FineTuner : IDisposable
    {
        private readonly FineTunerHandle handle;
        private readonly object gate = new object();

        private FineTuner(FineTunerHandle h)
        {
            handle = h;
        }

        /// <summary>Starts fine-tuning from modelDir: a checkpoint with a discriminator (a fresh
        /// head for numLabels labels, LABEL_0.., is added) or an existing classifier (continued
        /// with its config.json id2label labels and ids; pass 0 or its label count, or a larger
        /// count to add labels after the existing ones; at most 1024). optionsJson is null or a JSON object with keys learning_rate,
        /// warmup_steps, total_steps, weight_decay, layerwise_lr_decay, adam_epsilon,
        /// bias_correction, max_grad_norm, seed, threads, device ("cpu", the default; "cuda" or
        /// "cuda:N": Status.Cuda when not compiled in or not present), dropout and pool ("cls", the
        /// first token's state as HF ElectraForSequenceClassification, or "mean", the mean of the
        /// non-padding tokens' states, saved as "classifier_pooling": "mean"; left out: a
        /// classifier's own, "cls" for a new head).</summary>
        public static FineTuner Create(string modelDir, int numLabels, string optionsJson)
        {
            Library.CheckAbi();
            if (numLabels < 0)
                throw new ArgumentOutOfRangeException("numLabels", numLabels, "numLabels must not be negative");
            byte[] d = Native.Utf8Z(modelDir, "modelDir");
            byte[] o = optionsJson == null ? null : Native.Utf8Z(optionsJson, "optionsJson");
            FineTunerHandle h;
            int st = Native.electra_finetuner_new(d, Native.Size(numLabels), o, out h);
            Native.CheckCreated(st, h);
            return new FineTuner(h);
        }

        public static FineTuner Create(string modelDir, int numLabels)
        {
            return Create(modelDir, numLabels, (string)null);
        }

        public static FineTuner Create(string modelDir, int numLabels, IDictionary<string, object> options)
        {
            return Create(modelDir, numLabels, options == null ? null : Json.Write(options));
        }

        public bool IsDisposed { get { return handle.IsClosed; } }

        /// <summary>One step on batch rows of seqLen ids (mask and types may be null) with one
        /// label in [0, NumLabels) per row. Bad input leaves the weights untouched.</summary>
        public unsafe FineTuneStats Step(int[] ids, int[] mask, int[] types, int[] labels, int batch, int seqLen)
        {
            Inputs.Check(ids, mask, types, batch, seqLen);
            if (labels == null)
                throw new ArgumentNullException("labels");
            if (labels.Length != batch)
                throw new ArgumentException(string.Format("labels holds {0} values, batch = {1}", labels.Length, batch), "labels");
            var stats = new FineTuneStats();
            stats.structSize = (uint)Marshal.SizeOf(typeof(FineTuneStats));
            lock (gate)
            {
                if (handle.IsClosed)
                    throw new ObjectDisposedException("Electra.FineTuner");
                int st;
                fixed (int* pi = ids)
                fixed (int* pm = mask)
                fixed (int* pt = types)
                fixed (int* pl = labels)
                {
                    st = Native.electra_finetuner_step(handle, pi, pm, pt, Native.Size(batch), Native.Size(seqLen), pl, ref stats);
                }
                Native.Check(st);
            }
            return stats;
        }

        /// <summary>Writes the classifier as a HuggingFace ElectraForSequenceClassification
        /// directory (loadable by Model.Load, then Session.Classify).</summary>
        public void Save(string dir)
        {
            byte[] d = Native.Utf8Z(dir, "dir");
            lock (gate)
            {
                if (handle.IsClosed)
                    throw new ObjectDisposedException("Electra.FineTuner");
                Native.Check(Native.electra_finetuner_save(handle, d));
            }
        }

        public void Dispose()
        {
            handle.Dispose();
        }
    }
}
