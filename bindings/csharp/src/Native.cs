// P/Invoke declarations for libelectra (include/electra.h). Only blittable types cross the
// boundary: IntPtr/UIntPtr, pointers to pinned arrays, byte[] holding NUL-terminated UTF-8 (paths,
// options) or UTF-8 with its length (texts, tokens: electra_text), SafeHandles and Sequential
// structs of plain numbers and pointers.

using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Electra
{
    internal static unsafe class Native
    {
        // mono and .NET resolve "electra" to libelectra.so (LD_LIBRARY_PATH), electra.dll or
        // libelectra.dylib.
        private const string Lib = "electra";

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint electra_abi_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr electra_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr electra_last_error_message(byte[] buf, UIntPtr cap);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr electra_status_str(int status);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_device_count(int kind, out UIntPtr count);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_set_default_threads(UIntPtr n);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_default_threads(out UIntPtr n);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_load(byte[] path, out ModelHandle model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_load_with_options(byte[] path, byte[] optionsJson,
            out ModelHandle model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void electra_model_free(IntPtr model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_get_info(ModelHandle model, ref ModelInfo info);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_save(ModelHandle model, byte[] dir);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_new(ModelHandle model, out SessionHandle session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_new_with_options(ModelHandle model, byte[] optionsJson,
            out SessionHandle session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void electra_session_free(IntPtr session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_discriminate(SessionHandle s, int* ids, int* mask, int* types,
            UIntPtr batch, UIntPtr seqLen, float* output, UIntPtr outLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_generator_logits(SessionHandle s, int* ids, int* mask, int* types,
            UIntPtr batch, UIntPtr seqLen, float* output, UIntPtr outLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_hidden_states(SessionHandle s, int* ids, int* mask, int* types,
            UIntPtr batch, UIntPtr seqLen, float* output, UIntPtr outLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_classify(SessionHandle s, int* ids, int* mask, int* types,
            UIntPtr batch, UIntPtr seqLen, float* output, UIntPtr outLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_finetuner_new(byte[] modelDir, UIntPtr numLabels, byte[] optionsJson,
            out FineTunerHandle finetuner);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_finetuner_step(FineTunerHandle f, int* ids, int* mask, int* types,
            UIntPtr batch, UIntPtr seqLen, int* labels, ref FineTuneStats stats);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_finetuner_save(FineTunerHandle f, byte[] dir);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void electra_finetuner_free(IntPtr finetuner);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_new(byte[] init, byte[] optionsJson, out TrainerHandle trainer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_step(TrainerHandle t, int* ids, int* mask, int* types,
            UIntPtr batch, UIntPtr seqLen, ref StepStats stats);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_save(TrainerHandle t, byte[] dir);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_resume(byte[] dir, out TrainerHandle trainer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_resume_with_options(byte[] dir, byte[] optionsJson,
            out TrainerHandle trainer);

        /// <summary>electra_allreduce_fn: the library calls it on the thread that stepped the
        /// trainer, so it must not throw (the bridge in AllReduce.cs catches everything).</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int AllReduceFn(IntPtr data, UIntPtr count, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_set_allreduce(TrainerHandle t, AllReduceFn allreduce, IntPtr userData);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_export(TrainerHandle t, byte[] dir);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_trainer_get_model(TrainerHandle t, out ModelHandle model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void electra_trainer_cancel(TrainerHandle t);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void electra_trainer_free(IntPtr trainer);

        // ------------------------------------------------------------ text-level calls

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_load_from_memory(byte* configJson, UIntPtr configLen, byte* weights,
            UIntPtr weightsLen, byte[] optionsJson, out ModelHandle model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_label_name(ModelHandle m, UIntPtr i, byte[] buf, UIntPtr cap, out UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_model_tokenizer(ModelHandle m, out TokenizerHandle tokenizer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_load(byte[] path, out TokenizerHandle tokenizer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_load_from_memory(byte* json, UIntPtr len, out TokenizerHandle tokenizer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void electra_tokenizer_free(IntPtr tokenizer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_get_info(TokenizerHandle t, ref TokenizerInfo info);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_encode(TokenizerHandle t, NativeText* texts, NativeText* pairs, UIntPtr n,
            ref EncodeParams p, int* ids, int* mask, int* types, int* offsets, UIntPtr cap, out UIntPtr seqLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_decode(TokenizerHandle t, int* ids, UIntPtr n, int skipSpecialTokens,
            byte[] buf, UIntPtr cap, out UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_token_to_id(TokenizerHandle t, byte[] token, UIntPtr len, out int id);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_tokenizer_id_to_token(TokenizerHandle t, int id, byte[] buf, UIntPtr cap, out UIntPtr len);

        // The tokenizer argument of the session calls may be NULL (the model's own tokenizer):
        // TokenizerHandle.Null passes NULL.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_embed_texts(SessionHandle s, TokenizerHandle t, NativeText* texts, UIntPtr n,
            ref TextParams p, float* output, UIntPtr outLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_classify_texts(SessionHandle s, TokenizerHandle t, NativeText* texts,
            NativeText* pairs, UIntPtr n, ref TextParams p, float* output, UIntPtr outLen);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_detect_text(SessionHandle s, TokenizerHandle t, byte* text, UIntPtr len,
            ref TextParams p, NativeWordScore* output, UIntPtr cap, out UIntPtr nWords);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int electra_session_fill_mask_text(SessionHandle s, TokenizerHandle t, byte* text, UIntPtr len,
            UIntPtr topK, ref TextParams p, NativeTokenScore* output, UIntPtr cap, out UIntPtr nMasks);

        /// <summary>A call that writes a NUL-terminated UTF-8 string into (buf, cap) and its length
        /// into len, BUFFER_TOO_SMALL (with len set) when it does not fit.</summary>
        internal delegate int StringCall(byte[] buf, UIntPtr cap, out UIntPtr len);

        /// <summary>Runs call with a buffer that grows to the length it reports; throws on any
        /// other failure (on this thread, right after the call).</summary>
        internal static string ReadString(StringCall call)
        {
            var buf = new byte[128];
            while (true)
            {
                UIntPtr len;
                int st = call(buf, Size(buf.Length), out len);
                ulong n = len.ToUInt64();
                if (st == (int)Status.BufferTooSmall && n + 1 > (ulong)buf.Length && n < int.MaxValue)
                {
                    buf = new byte[n + 1];
                    continue;
                }
                Check(st);
                return Encoding.UTF8.GetString(buf, 0, (int)Math.Min(n, (ulong)buf.Length));
            }
        }

        /// <summary>Throws the ElectraException of a failed call. Must run right after the call, on
        /// the same thread: the library keeps the message per thread.</summary>
        internal static void Check(int status)
        {
            if (status != 0)
                throw new ElectraException((Status)status, LastErrorMessage());
        }

        /// <summary>Checks a create call: on failure reads the message first (same thread), then
        /// disposes the NULL handle the marshaller made, then throws.</summary>
        internal static void CheckCreated(int status, SafeHandle created)
        {
            if (status == 0)
                return;
            string msg = LastErrorMessage();
            if (created != null)
                created.Dispose();
            throw new ElectraException((Status)status, msg);
        }

        internal static string LastErrorMessage()
        {
            ulong n = electra_last_error_message(null, UIntPtr.Zero).ToUInt64();
            if (n > int.MaxValue - 1)
                n = int.MaxValue - 1;
            var buf = new byte[n + 1];
            ulong got = electra_last_error_message(buf, new UIntPtr((ulong)buf.Length)).ToUInt64();
            int len = (int)Math.Min(got, n);
            return Encoding.UTF8.GetString(buf, 0, len);
        }

        /// <summary>A string as NUL-terminated UTF-8. An embedded NUL would silently truncate a
        /// path, so it is refused.</summary>
        internal static byte[] Utf8Z(string s, string paramName)
        {
            if (s == null)
                throw new ArgumentNullException(paramName);
            if (s.IndexOf('\0') >= 0)
                throw new ArgumentException(paramName + " contains a NUL character", paramName);
            var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A static NUL-terminated UTF-8 string owned by the library.</summary>
        internal static string FromUtf8Z(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return null;
            byte* b = (byte*)p;
            int n = 0;
            while (b[n] != 0)
                n++;
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        internal static UIntPtr Size(long n) { return new UIntPtr((ulong)n); }
    }

    /// <summary>Owns an electra_model*; ReleaseHandle calls electra_model_free.</summary>
    internal sealed class ModelHandle : SafeHandle
    {
        public ModelHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.electra_model_free(handle);
            return true;
        }
    }

    /// <summary>Owns an electra_session*; ReleaseHandle calls electra_session_free.</summary>
    internal sealed class SessionHandle : SafeHandle
    {
        public SessionHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.electra_session_free(handle);
            return true;
        }
    }

    /// <summary>Owns an electra_trainer*; ReleaseHandle calls electra_trainer_free.</summary>
    internal sealed class TrainerHandle : SafeHandle
    {
        public TrainerHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.electra_trainer_free(handle);
            return true;
        }
    }

    /// <summary>Owns an electra_finetuner*; ReleaseHandle calls electra_finetuner_free.</summary>
    internal sealed class FineTunerHandle : SafeHandle
    {
        public FineTunerHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.electra_finetuner_free(handle);
            return true;
        }
    }

    /// <summary>Owns an electra_tokenizer*; ReleaseHandle calls electra_tokenizer_free.</summary>
    internal sealed class TokenizerHandle : SafeHandle
    {
        /// <summary>NULL, for the session calls' "the model's own tokenizer". Never closed (an
        /// invalid handle is never released).</summary>
        internal static readonly TokenizerHandle Null = new TokenizerHandle();

        public TokenizerHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.electra_tokenizer_free(handle);
            return true;
        }
    }

    /// <summary>electra_text: UTF-8 bytes by pointer and length (no NUL).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeText
    {
        internal byte* data;
        internal UIntPtr len;
    }

    /// <summary>electra_text_params.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TextParams
    {
        internal uint structSize;
        internal uint batchSize;
        internal uint maxLength;
        internal uint pooling;
        internal int normalize;
    }

    /// <summary>electra_encode_params.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct EncodeParams
    {
        internal uint structSize;
        internal int addSpecialTokens;
        internal uint maxLength;
    }

    /// <summary>electra_word_score.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeWordScore
    {
        internal uint start;
        internal uint end;
        internal float score;
    }

    /// <summary>electra_token_score.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeTokenScore
    {
        internal int id;
        internal float score;
    }
}
