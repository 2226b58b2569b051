using System;
using System.Runtime.InteropServices;

namespace Electra
{
    /// <summary>How an embedding is pooled from the last hidden states (ELECTRA_POOLING_*).</summary>
    public enum Pooling
    {
        /// <summary>The mean over the text's tokens (the default).</summary>
        Mean = 0,
        /// <summary>The [CLS] token's state.</summary>
        Cls = 1,
    }

    /// <summary>How the Session text calls run (electra_text_params, plus the tokenizer). Every
    /// field's default is the library's.</summary>
    public sealed class TextOptions
    {
        /// <summary>Texts per forward pass (0, the default: 32). Texts are sorted by length and
        /// padded per batch; results do not depend on it.</summary>
        public int BatchSize;

        /// <summary>Cut each text to this many tokens, [CLS]/[SEP] included (0, the default: the
        /// model's MaxPositionEmbeddings; more than that throws Status.InvalidArgument).</summary>
        public int MaxLength;

        /// <summary>Embeddings: mean (the default) or [CLS] pooling.</summary>
        public Pooling Pooling = Pooling.Mean;

        /// <summary>Embeddings: scale each to unit length (cosine similarity is then a dot
        /// product). Default false.</summary>
        public bool Normalize;

        /// <summary>The tokenizer to use; null (the default): the model's own (the tokenizer.json
        /// or vocab.txt beside its weights; a model without one throws Status.Unsupported).</summary>
        public Tokenizer Tokenizer;

        internal static TextParams ToNative(TextOptions o)
        {
            var p = new TextParams { structSize = (uint)Marshal.SizeOf(typeof(TextParams)) };
            if (o == null)
                return p;
            if (o.BatchSize < 0)
                throw new ArgumentOutOfRangeException("BatchSize", o.BatchSize, "BatchSize must be 0 (the default) or positive");
            if (o.MaxLength < 0)
                throw new ArgumentOutOfRangeException("MaxLength", o.MaxLength, "MaxLength must be 0 (the model's) or positive");
            p.batchSize = (uint)o.BatchSize;
            p.maxLength = (uint)o.MaxLength;
            p.pooling = (uint)o.Pooling;
            p.normalize = o.Normalize ? 1 : 0;
            return p;
        }

        /// <summary>The handle to pass: the option's tokenizer, or NULL for the model's.</summary>
        internal static TokenizerHandle TokenizerOf(TextOptions o)
        {
            if (o == null || o.Tokenizer == null)
                return TokenizerHandle.Null;
            o.Tokenizer.ThrowIfDisposed();
            return o.Tokenizer.Handle;
        }
    }

    /// <summary>One word of Session.DetectText.</summary>
    public struct WordScore
    {
        /// <summary>Byte offset of the word's first byte in the text's UTF-8 form.</summary>
        public int Start;
        /// <summary>Byte offset past its last byte.</summary>
        public int End;
        /// <summary>Probability that the word was replaced (the largest of its pieces').</summary>
        public float Score;
        /// <summary>The word as it stands in the text.</summary>
        public string Word;

        public override string ToString()
        {
            return string.Format("{0} [{1}, {2}) {3:F4}", Word, Start, End, Score);
        }
    }

    /// <summary>One candidate of Session.FillMask.</summary>
    public struct TokenScore
    {
        /// <summary>The token id.</summary>
        public int Id;
        /// <summary>Its probability at that position.</summary>
        public float Score;
        /// <summary>The vocabulary entry of Id (null for an id past the tokenizer's vocabulary).</summary>
        public string Token;

        public override string ToString()
        {
            return string.Format("{0} ({1}) {2:F4}", Token, Id, Score);
        }
    }

    /// <summary>One text's result of Session.ClassifyTexts.</summary>
    public sealed class Classification
    {
        internal Classification(float[] probabilities, string[] labels)
        {
            Probabilities = probabilities;
            int best = 0;
            for (int i = 1; i < probabilities.Length; i++)
                if (probabilities[i] > probabilities[best])
                    best = i;
            LabelId = best;
            Label = best < labels.Length ? labels[best] : null;
            Score = probabilities.Length > 0 ? probabilities[best] : float.NaN;
        }

        /// <summary>The softmax over the labels, in label id order (one label: the raw regression
        /// output). Session.Labels names them.</summary>
        public float[] Probabilities { get; private set; }
        /// <summary>The most likely label's id.</summary>
        public int LabelId { get; private set; }
        /// <summary>Its name (config.json's id2label; LABEL_i when it has none).</summary>
        public string Label { get; private set; }
        /// <summary>Its probability.</summary>
        public float Score { get; private set; }

        public override string ToString()
        {
            return string.Format("{0} ({1:F4})", Label, Score);
        }
    }

    /// <summary>Helpers for embeddings.</summary>
    public static class Embeddings
    {
        /// <summary>The cosine similarity of two vectors of one length (0 when either is zero).</summary>
        public static float Cosine(float[] a, float[] b)
        {
            if (a == null)
                throw new ArgumentNullException("a");
            if (b == null)
                throw new ArgumentNullException("b");
            if (a.Length != b.Length)
                throw new ArgumentException(string.Format("lengths {0} and {1} differ", a.Length, b.Length), "b");
            double dot = 0, na = 0, nb = 0;
            for (int i = 0; i < a.Length; i++)
            {
                dot += (double)a[i] * b[i];
                na += (double)a[i] * a[i];
                nb += (double)b[i] * b[i];
            }
            return na == 0 || nb == 0 ? 0f : (float)(dot / Math.Sqrt(na * nb));
        }
    }
}
