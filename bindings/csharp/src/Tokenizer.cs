using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Electra
{
    /// <summary>A WordPiece tokenizer (an HF tokenizer.json or a BERT vocab.txt): text to ids with
    /// byte offsets, ids back to text. Immutable: safe to use from many threads at once.
    ///
    /// Text crosses to the library as UTF-8 with its length. A string holding a lone surrogate
    /// (which has no UTF-8 form) throws ArgumentException rather than being changed silently;
    /// the byte[] overloads take UTF-8 as it is, and bytes that are not UTF-8 throw
    /// ElectraException with Status.InvalidArgument naming the text and byte. Offsets are byte
    /// offsets into each text's UTF-8 form.</summary>
    public sealed class Tokenizer : IDisposable
    {
        internal readonly TokenizerHandle Handle;
        private readonly TokenizerInfo info;

        internal Tokenizer(TokenizerHandle handle)
        {
            Handle = handle;
            var i = new TokenizerInfo();
            i.structSize = (uint)Marshal.SizeOf(typeof(TokenizerInfo));
            int st = Native.electra_tokenizer_get_info(handle, ref i);
            if (st != 0)
            {
                string msg = Native.LastErrorMessage();
                handle.Dispose();
                throw new ElectraException((Status)st, msg);
            }
            info = i;
        }

        /// <summary>Loads a tokenizer: a model directory (its tokenizer.json, else vocab.txt; in
        /// the pair layout discriminator/'s or generator/'s), an HF tokenizer.json (any file
        /// ending in .json) or a BERT vocab.txt (any other file, BERT-uncased WordPiece). An
        /// unreadable path throws ElectraException with Status.Io; a file that is no tokenizer,
        /// or lacks [PAD] [UNK] [CLS] [SEP] [MASK], Status.Format.</summary>
        public static Tokenizer Load(string path)
        {
            Library.CheckAbi();
            byte[] p = Native.Utf8Z(path, "path");
            TokenizerHandle h;
            int st = Native.electra_tokenizer_load(p, out h);
            Native.CheckCreated(st, h);
            return new Tokenizer(h);
        }

        /// <summary>Loads a tokenizer from the bytes of an HF tokenizer.json (an app's asset);
        /// they are copied. Errors as Load.</summary>
        public static unsafe Tokenizer FromMemory(byte[] tokenizerJson)
        {
            if (tokenizerJson == null)
                throw new ArgumentNullException("tokenizerJson");
            Library.CheckAbi();
            // An empty array is passed as a valid pointer with length 0 (a Format error, not NULL).
            byte[] b = tokenizerJson.Length == 0 ? new byte[1] : tokenizerJson;
            TokenizerHandle h;
            int st;
            fixed (byte* p = b)
                st = Native.electra_tokenizer_load_from_memory(p, Native.Size(tokenizerJson.Length), out h);
            Native.CheckCreated(st, h);
            return new Tokenizer(h);
        }

        /// <summary>Vocabulary size and special token ids.</summary>
        public TokenizerInfo Info
        {
            get
            {
                ThrowIfDisposed();
                return info;
            }
        }

        /// <summary>True once Dispose has run.</summary>
        public bool IsDisposed { get { return Handle.IsClosed; } }

        public void Dispose()
        {
            Handle.Dispose();
        }

        internal void ThrowIfDisposed()
        {
            if (Handle.IsClosed)
                throw new ObjectDisposedException("Electra.Tokenizer");
        }

        /// <summary>Encodes texts as HF tokenizers does (`[CLS] text [SEP]` unless
        /// options.AddSpecialTokens is false), each row padded with [PAD] to the longest and cut
        /// to options.MaxLength when set. options may be null (the defaults).</summary>
        public EncodedBatch Encode(string[] texts, EncodeOptions options = null)
        {
            return Run(Utf8Texts.FromStrings(texts, "texts"), null, options);
        }

        /// <summary>Encode on UTF-8 bytes as they are.</summary>
        public EncodedBatch Encode(byte[][] texts, EncodeOptions options = null)
        {
            return Run(Utf8Texts.FromBytes(texts, "texts"), null, options);
        }

        /// <summary>Encodes text pairs (`[CLS] a [SEP] b [SEP]`, TokenTypeIds 1 on b's tokens;
        /// truncation cuts the longer text first). a and b hold as many texts.</summary>
        public EncodedBatch EncodePairs(string[] a, string[] b, EncodeOptions options = null)
        {
            var ta = Utf8Texts.FromStrings(a, "a");
            var tb = Utf8Texts.FromStrings(b, "b");
            Utf8Texts.CheckPairs(ta, tb, "b");
            return Run(ta, tb, options);
        }

        /// <summary>EncodePairs on UTF-8 bytes as they are.</summary>
        public EncodedBatch EncodePairs(byte[][] a, byte[][] b, EncodeOptions options = null)
        {
            var ta = Utf8Texts.FromBytes(a, "a");
            var tb = Utf8Texts.FromBytes(b, "b");
            Utf8Texts.CheckPairs(ta, tb, "b");
            return Run(ta, tb, options);
        }

        /// <summary>The text of ids: WordPiece pieces glued, as HF decode with
        /// clean_up_tokenization_spaces; special tokens left out when skipSpecial. An id outside
        /// the vocabulary throws ElectraException with Status.InvalidArgument.</summary>
        public unsafe string Decode(int[] ids, bool skipSpecial)
        {
            if (ids == null)
                throw new ArgumentNullException("ids");
            ThrowIfDisposed();
            return Native.ReadString((byte[] buf, UIntPtr cap, out UIntPtr len) =>
            {
                fixed (int* p = ids)
                    return Native.electra_tokenizer_decode(Handle, p, Native.Size(ids.Length), skipSpecial ? 1 : 0, buf, cap, out len);
            });
        }

        /// <summary>The id of a vocabulary entry (such as "##ing" or "[MASK]", not text to
        /// tokenize), or -1 when there is none.</summary>
        public int TokenToId(string token)
        {
            byte[] b = Utf8Texts.Strict(token, "token");
            ThrowIfDisposed();
            int id;
            Native.Check(Native.electra_tokenizer_token_to_id(Handle, b, Native.Size(b.Length), out id));
            return id;
        }

        /// <summary>The vocabulary entry of id; an id outside the vocabulary throws
        /// ElectraException with Status.InvalidArgument.</summary>
        public string IdToToken(int id)
        {
            ThrowIfDisposed();
            return Native.ReadString((byte[] buf, UIntPtr cap, out UIntPtr len) =>
                Native.electra_tokenizer_id_to_token(Handle, id, buf, cap, out len));
        }

        // Elements per output array that one call may take without asking the size first.
        private const long GuessLimit = 1 << 20;

        private unsafe EncodedBatch Run(Utf8Texts a, Utf8Texts b, EncodeOptions options)
        {
            var p = (options ?? new EncodeOptions()).ToNative();
            int n = a.Count;
            // A row has at most one token per byte plus the special tokens (3 for a pair), or
            // MaxLength: try that size first, so the texts are tokenized once; the library says
            // the size it needs when it does not fit.
            long perRow = a.MaxLength + (b == null ? 2 : b.MaxLength + 3);
            if (p.maxLength > 0)
                perRow = Math.Min(perRow, p.maxLength);
            long cap = (long)n * perRow <= GuessLimit ? (long)n * perRow : 0;
            ThrowIfDisposed();
            while (true)
            {
                int[] ids = new int[cap], mask = new int[cap], types = new int[cap], offsets = new int[2 * cap];
                UIntPtr seqLen;
                int st;
                fixed (byte* pa = a.Bytes)
                fixed (byte* pb = b == null ? null : b.Bytes)
                {
                    NativeText[] ta = a.Texts(pa), tb = b == null ? null : b.Texts(pb);
                    fixed (NativeText* pta = ta)
                    fixed (NativeText* ptb = tb)
                    fixed (int* pi = ids)
                    fixed (int* pm = mask)
                    fixed (int* pt = types)
                    fixed (int* po = offsets)
                        st = Native.electra_tokenizer_encode(Handle, pta, ptb, Native.Size(n), ref p,
                            cap == 0 ? null : pi, cap == 0 ? null : pm, cap == 0 ? null : pt, cap == 0 ? null : po,
                            Native.Size(cap), out seqLen);
                }
                long need = (long)n * (long)seqLen.ToUInt64();
                if ((st == 0 && cap == 0 && need > 0) || (st == (int)Status.BufferTooSmall && need > cap))
                {
                    if (need > int.MaxValue / 2)
                        throw new ArgumentException("the encoding would exceed the largest array");
                    cap = need;
                    continue;
                }
                Native.Check(st);
                int len = (int)need;
                if (len != cap)
                {
                    Array.Resize(ref ids, len);
                    Array.Resize(ref mask, len);
                    Array.Resize(ref types, len);
                    Array.Resize(ref offsets, 2 * len);
                }
                return new EncodedBatch(n, (int)seqLen.ToUInt64(), ids, mask, types, offsets);
            }
        }
    }

    /// <summary>What a tokenizer holds: a blittable mirror of electra_tokenizer_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TokenizerInfo
    {
        internal uint structSize;
        private uint vocabSize;
        private int padId;
        private int unkId;
        private int clsId;
        private int sepId;
        private int maskId;

        /// <summary>Number of ids (a model's vocabulary must be at least this).</summary>
        public int VocabSize { get { return (int)vocabSize; } }
        public int PadId { get { return padId; } }
        public int UnkId { get { return unkId; } }
        public int ClsId { get { return clsId; } }
        public int SepId { get { return sepId; } }
        public int MaskId { get { return maskId; } }

        public override string ToString()
        {
            return string.Format("TokenizerInfo(vocab {0}, [PAD] {1}, [UNK] {2}, [CLS] {3}, [SEP] {4}, [MASK] {5})",
                VocabSize, PadId, UnkId, ClsId, SepId, MaskId);
        }
    }

    /// <summary>How Tokenizer.Encode encodes (electra_encode_params).</summary>
    public sealed class EncodeOptions
    {
        /// <summary>Add [CLS] and [SEP] (the default: true).</summary>
        public bool AddSpecialTokens = true;

        /// <summary>Cut each row to at most this many tokens, special tokens included (pairs: the
        /// longer text first). 0, the default: no limit.</summary>
        public int MaxLength;

        internal EncodeParams ToNative()
        {
            if (MaxLength < 0)
                throw new ArgumentOutOfRangeException("MaxLength", MaxLength, "MaxLength must be 0 (no limit) or positive");
            return new EncodeParams
            {
                structSize = (uint)Marshal.SizeOf(typeof(EncodeParams)),
                addSpecialTokens = AddSpecialTokens ? 1 : 0,
                maxLength = (uint)MaxLength,
            };
        }
    }

    /// <summary>Tokenizer.Encode's result: Batch rows of SeqLen tokens, row-major, ready for the
    /// Session calls on ids.</summary>
    public sealed class EncodedBatch
    {
        internal EncodedBatch(int batch, int seqLen, int[] ids, int[] mask, int[] types, int[] offsets)
        {
            Batch = batch;
            SeqLen = seqLen;
            Ids = ids;
            AttentionMask = mask;
            TokenTypeIds = types;
            Offsets = offsets;
        }

        /// <summary>Rows (texts or pairs).</summary>
        public int Batch { get; private set; }
        /// <summary>Tokens per row: the longest row's length; shorter rows are padded.</summary>
        public int SeqLen { get; private set; }
        /// <summary>Batch*SeqLen token ids.</summary>
        public int[] Ids { get; private set; }
        /// <summary>1 for a token, 0 for padding.</summary>
        public int[] AttentionMask { get; private set; }
        /// <summary>0 for the first text's tokens, 1 for the second's.</summary>
        public int[] TokenTypeIds { get; private set; }
        /// <summary>2*Batch*SeqLen byte offsets: start and end of each token in its text's
        /// UTF-8 bytes (the second text's for TokenTypeIds 1); 0, 0 for special and padding
        /// tokens.</summary>
        public int[] Offsets { get; private set; }

        /// <summary>Byte offset of token pos of row's first byte.</summary>
        public int Start(int row, int pos) { return Offsets[2 * Index(row, pos)]; }
        /// <summary>Byte offset past token pos of row's last byte.</summary>
        public int End(int row, int pos) { return Offsets[2 * Index(row, pos) + 1]; }
        /// <summary>The ids of one row, padding included.</summary>
        public int[] Row(int row)
        {
            var r = new int[SeqLen];
            Array.Copy(Ids, Index(row, 0), r, 0, SeqLen);
            return r;
        }

        private int Index(int row, int pos)
        {
            if (row < 0 || row >= Batch)
                throw new ArgumentOutOfRangeException("row");
            if (pos < 0 || pos >= SeqLen)
                throw new ArgumentOutOfRangeException("pos");
            return row * SeqLen + pos;
        }
    }

    /// <summary>Texts as one UTF-8 buffer with each text's start and length, for electra_text
    /// arrays (pinned once).</summary>
    internal sealed class Utf8Texts
    {
        private static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        internal byte[] Bytes;
        private int[] starts, lengths;
        internal int Count { get { return starts.Length; } }
        /// <summary>The longest text, in bytes.</summary>
        internal int MaxLength;

        /// <summary>A string's UTF-8 bytes; a lone surrogate throws ArgumentException.</summary>
        internal static byte[] Strict(string s, string paramName)
        {
            if (s == null)
                throw new ArgumentNullException(paramName);
            try
            {
                return StrictUtf8.GetBytes(s);
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException(string.Format(
                    "{0} holds a lone surrogate (U+{1:X4} at index {2}), which has no UTF-8 form; pass UTF-8 bytes to choose a replacement",
                    paramName, (int)(e.CharUnknown != '\0' ? e.CharUnknown : e.CharUnknownHigh), e.Index), paramName, e);
            }
        }

        internal static Utf8Texts FromStrings(string[] texts, string paramName)
        {
            if (texts == null)
                throw new ArgumentNullException(paramName);
            var bytes = new byte[texts.Length][];
            for (int i = 0; i < texts.Length; i++)
            {
                if (texts[i] == null)
                    throw new ArgumentNullException(paramName, string.Format("{0}[{1}] is null", paramName, i));
                bytes[i] = Strict(texts[i], string.Format("{0}[{1}]", paramName, i));
            }
            return Join(bytes);
        }

        internal static Utf8Texts FromBytes(byte[][] texts, string paramName)
        {
            if (texts == null)
                throw new ArgumentNullException(paramName);
            for (int i = 0; i < texts.Length; i++)
                if (texts[i] == null)
                    throw new ArgumentNullException(paramName, string.Format("{0}[{1}] is null", paramName, i));
            return Join(texts);
        }

        internal static void CheckPairs(Utf8Texts a, Utf8Texts b, string paramName)
        {
            if (a.Count != b.Count)
                throw new ArgumentException(string.Format("{0} texts and {1} pairs: there must be as many", a.Count, b.Count), paramName);
        }

        private static Utf8Texts Join(byte[][] parts)
        {
            long total = 0;
            var t = new Utf8Texts { starts = new int[parts.Length], lengths = new int[parts.Length] };
            foreach (var p in parts)
                total += p.Length;
            if (total > int.MaxValue)
                throw new ArgumentException("the texts hold more than 2 GiB");
            t.Bytes = new byte[total];
            int at = 0;
            for (int i = 0; i < parts.Length; i++)
            {
                Buffer.BlockCopy(parts[i], 0, t.Bytes, at, parts[i].Length);
                t.starts[i] = at;
                t.lengths[i] = parts[i].Length;
                t.MaxLength = Math.Max(t.MaxLength, parts[i].Length);
                at += parts[i].Length;
            }
            return t;
        }

        /// <summary>The electra_text array over Bytes pinned at pinned (NULL when Bytes is empty:
        /// then every text is empty). At least one element, so that the array is never NULL.</summary>
        internal unsafe NativeText[] Texts(byte* pinned)
        {
            var r = new NativeText[Math.Max(Count, 1)];
            for (int i = 0; i < Count; i++)
            {
                r[i].data = lengths[i] == 0 ? null : pinned + starts[i];
                r[i].len = Native.Size(lengths[i]);
            }
            return r;
        }
    }
}
