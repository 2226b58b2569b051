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
        // The model's label names and its own tokenizer (null when it has none), taken at
        // creation: the session outlives the Model object.
        private string[] labels;
        private Tokenizer modelTokenizer;

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
            AttachText(model);
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
            AttachText(model);
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
            if (modelTokenizer != null)
                modelTokenizer.Dispose();
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

        // ------------------------------------------------------------ text in, answers out

        private void AttachText(Model model)
        {
            labels = model.Labels;
            TokenizerHandle t;
            if (Native.electra_model_tokenizer(model.Handle, out t) == 0)
                modelTokenizer = new Tokenizer(t);
            else
                t.Dispose(); // no tokenizer beside the weights: the text calls need one in their options
        }

        /// <summary>The names of the classification labels, by id (empty without a
        /// classifier).</summary>
        public string[] Labels { get { return (string[])labels.Clone(); } }

        /// <summary>Sentence embeddings: HiddenSize floats per text, pooled from the last hidden
        /// states as options say (mean by default; normalized when options.Normalize). Texts run
        /// in padded batches sorted by length, and each embedding equals that text's alone to
        /// rounding. Texts longer than options.MaxLength (default: the model's positions) are
        /// cut. See Tokenizer about strings and bytes.</summary>
        public float[][] EmbedTexts(string[] texts, TextOptions options = null)
        {
            return Split(RunTexts(false, Utf8Texts.FromStrings(texts, "texts"), null, options), info.HiddenSize);
        }

        /// <summary>EmbedTexts on UTF-8 bytes as they are (bytes that are not UTF-8 throw
        /// Status.InvalidArgument).</summary>
        public float[][] EmbedTexts(byte[][] texts, TextOptions options = null)
        {
            return Split(RunTexts(false, Utf8Texts.FromBytes(texts, "texts"), null, options), info.HiddenSize);
        }

        /// <summary>Class probabilities of each text from a fine-tuned classifier, with the most
        /// likely label's name (Labels names them all). A model without a classifier throws
        /// Status.Unsupported.</summary>
        public Classification[] ClassifyTexts(string[] texts, TextOptions options = null)
        {
            return Classes(RunTexts(true, Utf8Texts.FromStrings(texts, "texts"), null, options));
        }

        public Classification[] ClassifyTexts(byte[][] texts, TextOptions options = null)
        {
            return Classes(RunTexts(true, Utf8Texts.FromBytes(texts, "texts"), null, options));
        }

        /// <summary>ClassifyTexts on text pairs (`[CLS] a [SEP] b [SEP]`), as sentence-pair tasks
        /// read them; a and b hold as many texts.</summary>
        public Classification[] ClassifyTextPairs(string[] a, string[] b, TextOptions options = null)
        {
            var ta = Utf8Texts.FromStrings(a, "a");
            var tb = Utf8Texts.FromStrings(b, "b");
            Utf8Texts.CheckPairs(ta, tb, "b");
            return Classes(RunTexts(true, ta, tb, options));
        }

        public Classification[] ClassifyTextPairs(byte[][] a, byte[][] b, TextOptions options = null)
        {
            var ta = Utf8Texts.FromBytes(a, "a");
            var tb = Utf8Texts.FromBytes(b, "b");
            Utf8Texts.CheckPairs(ta, tb, "b");
            return Classes(RunTexts(true, ta, tb, options));
        }

        /// <summary>Replaced-token detection on one text: each word (split at whitespace and
        /// punctuation, as BERT does) with its byte span and the probability that it was
        /// replaced, in text order. Words past options.MaxLength tokens are not scored.</summary>
        public WordScore[] DetectText(string text, TextOptions options = null)
        {
            return Detect(Utf8Texts.Strict(text, "text"), options);
        }

        public WordScore[] DetectText(byte[] text, TextOptions options = null)
        {
            if (text == null)
                throw new ArgumentNullException("text");
            return Detect(text, options);
        }

        /// <summary>Fill-mask on one text holding [MASK] tokens: for each mask, in text order,
        /// the topK most likely tokens from the generator, best first (topK above the vocabulary
        /// is cut to it). A text without [MASK] throws Status.InvalidArgument; a model without a
        /// generator, Status.Unsupported.</summary>
        public TokenScore[][] FillMask(string text, int topK = 5, TextOptions options = null)
        {
            return Fill(Utf8Texts.Strict(text, "text"), topK, options);
        }

        public TokenScore[][] FillMask(byte[] text, int topK = 5, TextOptions options = null)
        {
            if (text == null)
                throw new ArgumentNullException("text");
            return Fill(text, topK, options);
        }

        private static float[][] Split(float[] flat, int width)
        {
            int n = width == 0 ? 0 : flat.Length / width;
            var rows = new float[n][];
            for (int i = 0; i < n; i++)
            {
                rows[i] = new float[width];
                Array.Copy(flat, (long)i * width, rows[i], 0, width);
            }
            return rows;
        }

        private Classification[] Classes(float[] flat)
        {
            float[][] rows = Split(flat, info.NumLabels);
            var r = new Classification[rows.Length];
            for (int i = 0; i < rows.Length; i++)
                r[i] = new Classification(rows[i], labels);
            return r;
        }

        private void ThrowIfDisposed()
        {
            if (handle.IsClosed)
                throw new ObjectDisposedException("Electra.Session");
        }

        private unsafe float[] RunTexts(bool classify, Utf8Texts a, Utf8Texts b, TextOptions options)
        {
            TextParams p = TextOptions.ToNative(options);
            TokenizerHandle t = TextOptions.TokenizerOf(options);
            int width = classify ? info.NumLabels : info.HiddenSize;
            if (classify && width == 0)
                throw new ElectraException(Status.Unsupported, "unsupported: the model has no classification head (num_labels = 0)");
            long need = (long)a.Count * width;
            if (need > int.MaxValue)
                throw new ArgumentException("the result would exceed the largest array");
            // One element at least, so that the pointer is never NULL (no texts: the library says so).
            var output = new float[Math.Max(need, 1)];
            lock (gate)
            {
                ThrowIfDisposed();
                int st;
                fixed (byte* pa = a.Bytes)
                fixed (byte* pb = b == null ? null : b.Bytes)
                {
                    NativeText[] ta = a.Texts(pa), tb = b == null ? null : b.Texts(pb);
                    fixed (NativeText* pta = ta)
                    fixed (NativeText* ptb = tb)
                    fixed (float* po = output)
                    {
                        UIntPtr n = Native.Size(a.Count), len = Native.Size(need);
                        st = classify
                            ? Native.electra_session_classify_texts(handle, t, pta, ptb, n, ref p, po, len)
                            : Native.electra_session_embed_texts(handle, t, pta, n, ref p, po, len);
                    }
                }
                Native.Check(st);
            }
            if (output.Length != need)
                Array.Resize(ref output, (int)need);
            return output;
        }

        private unsafe WordScore[] Detect(byte[] text, TextOptions options)
        {
            TextParams p = TextOptions.ToNative(options);
            TokenizerHandle t = TextOptions.TokenizerOf(options);
            // A word is at least one byte and one token of the cut row: this many always fit, so
            // the model runs once.
            long cap = Math.Min((long)text.Length, Math.Max(info.MaxPositionEmbeddings, p.maxLength)) + 1;
            NativeWordScore[] words;
            int count;
            lock (gate)
            {
                while (true)
                {
                    ThrowIfDisposed();
                    words = new NativeWordScore[cap];
                    UIntPtr n;
                    int st;
                    fixed (byte* pt = text)
                    fixed (NativeWordScore* pw = words)
                        st = Native.electra_session_detect_text(handle, t, pt, Native.Size(text.Length), ref p, pw, Native.Size(cap), out n);
                    if (st == (int)Status.BufferTooSmall && (long)n.ToUInt64() > cap)
                    {
                        cap = (long)n.ToUInt64();
                        continue;
                    }
                    Native.Check(st);
                    count = (int)n.ToUInt64();
                    break;
                }
            }
            var r = new WordScore[count];
            for (int i = 0; i < count; i++)
            {
                int s = (int)Math.Min(words[i].start, (uint)text.Length), e = (int)Math.Min(words[i].end, (uint)text.Length);
                r[i] = new WordScore
                {
                    Start = s, End = e, Score = words[i].score,
                    Word = System.Text.Encoding.UTF8.GetString(text, s, Math.Max(e - s, 0)),
                };
            }
            return r;
        }

        private static readonly byte[] MaskBytes = System.Text.Encoding.ASCII.GetBytes("[MASK]");

        private static int CountMasks(byte[] text)
        {
            int n = 0;
            for (int i = 0; i + MaskBytes.Length <= text.Length; i++)
            {
                int j = 0;
                while (j < MaskBytes.Length && text[i + j] == MaskBytes[j])
                    j++;
                if (j == MaskBytes.Length)
                    n++;
            }
            return n;
        }

        private unsafe TokenScore[][] Fill(byte[] text, int topK, TextOptions options)
        {
            if (topK <= 0)
                throw new ArgumentOutOfRangeException("topK", topK, "topK must be at least 1");
            TextParams p = TextOptions.ToNative(options);
            TokenizerHandle t = TextOptions.TokenizerOf(options);
            Tokenizer tok = options != null && options.Tokenizer != null ? options.Tokenizer : modelTokenizer;
            int k = Math.Min(topK, Math.Max(info.VocabSize, 1));
            // Try as many masks as the text spells [MASK]; the library says when there are more.
            long cap = (long)Math.Max(CountMasks(text), 1) * k;
            NativeTokenScore[] cands;
            int masks;
            lock (gate)
            {
                while (true)
                {
                    ThrowIfDisposed();
                    if (cap > int.MaxValue)
                        throw new ArgumentException("the result would exceed the largest array", "topK");
                    cands = new NativeTokenScore[cap];
                    UIntPtr n;
                    int st;
                    fixed (byte* pt = text)
                    fixed (NativeTokenScore* pc = cands)
                        st = Native.electra_session_fill_mask_text(handle, t, pt, Native.Size(text.Length), Native.Size(topK), ref p,
                            pc, Native.Size(cap), out n);
                    if (st == (int)Status.BufferTooSmall && (long)n.ToUInt64() * k > cap)
                    {
                        cap = (long)n.ToUInt64() * k;
                        continue;
                    }
                    Native.Check(st);
                    masks = (int)n.ToUInt64();
                    break;
                }
            }
            int vocab = tok != null && !tok.IsDisposed ? tok.Info.VocabSize : 0;
            var r = new TokenScore[masks][];
            for (int m = 0; m < masks; m++)
            {
                r[m] = new TokenScore[k];
                for (int j = 0; j < k; j++)
                {
                    var c = cands[m * k + j];
                    r[m][j] = new TokenScore { Id = c.id, Score = c.score, Token = c.id >= 0 && c.id < vocab ? tok.IdToToken(c.id) : null };
                }
            }
            return r;
        }
    }
}
