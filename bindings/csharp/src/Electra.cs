using System;
using System.Runtime.InteropServices;

namespace Electra
{
    /// <summary>libelectra status codes (electra_status); never renumbered.</summary>
    public enum Status
    {
        Ok = 0,
        InvalidArgument = 1,
        NullPointer = 2,
        InvalidHandle = 3,
        Io = 4,
        Format = 5,
        Shape = 6,
        BufferTooSmall = 7,
        OutOfMemory = 8,
        Cancelled = 9,
        Unsupported = 10,
        Numeric = 11,
        Cuda = 12,
        Internal = 13,
        Panic = 14,
        /// <summary>A data-parallel run failed: the host's all-reduce (see Trainer.SetAllReduce)
        /// reported an error, or another rank failed the step.</summary>
        Distributed = 15,
    }

    /// <summary>A kind of compute device (electra_device_kind, ELECTRA_DEVICE_*).</summary>
    public enum DeviceKind
    {
        /// <summary>The host CPU, always present.</summary>
        Cpu = 0,
        /// <summary>NVIDIA GPUs through CUDA (a library built with the cuda feature, and a driver).</summary>
        Cuda = 1,
    }

    /// <summary>A failure reported by libelectra: its status code and detailed message.</summary>
    public class ElectraException : Exception
    {
        public ElectraException(Status status, string nativeMessage)
            : this(status, nativeMessage, null)
        {
        }

        /// <summary>A failure with the managed exception that caused it (what an all-reduce
        /// callback threw), which Message names and InnerException holds.</summary>
        public ElectraException(Status status, string nativeMessage, Exception cause)
            : base("electra: " + (string.IsNullOrEmpty(nativeMessage) ? Library.StatusName(status) : nativeMessage)
                + (cause == null ? "" : " (" + cause.GetType().Name + ": " + cause.Message + ")"), cause)
        {
            Status = status;
            NativeMessage = nativeMessage ?? "";
        }

        /// <summary>The status code the library returned.</summary>
        public Status Status { get; private set; }

        /// <summary>The library's message (electra_last_error_message) for this failure.</summary>
        public string NativeMessage { get; private set; }
    }

    /// <summary>Library-wide information.</summary>
    public static class Library
    {
        /// <summary>ELECTRA_ABI_VERSION of the electra.h this binding mirrors.</summary>
        public const uint HeaderAbiVersion = 1;

        private static readonly object abiLock = new object();
        private static bool abiChecked;

        /// <summary>The library version, e.g. "0.1.0".</summary>
        public static string Version { get { return Native.FromUtf8Z(Native.electra_version()); } }

        /// <summary>The C ABI version of the library loaded at run time.</summary>
        public static uint AbiVersion { get { return Native.electra_abi_version(); } }

        /// <summary>The library's name for a status code ("invalid argument", ...).</summary>
        public static string StatusName(Status status)
        {
            return Native.FromUtf8Z(Native.electra_status_str((int)status));
        }

        /// <summary>How many devices of a kind the library can use: 1 for DeviceKind.Cpu, the
        /// driver's device count for DeviceKind.Cuda. A library built without CUDA, or a machine
        /// whose CUDA driver cannot be loaded, throws ElectraException with Status.Cuda and a
        /// message saying which; an unknown kind, Status.InvalidArgument.</summary>
        public static int DeviceCount(DeviceKind kind)
        {
            UIntPtr n;
            Native.Check(Native.electra_device_count((int)kind, out n));
            return (int)Math.Min(n.ToUInt64(), (ulong)int.MaxValue);
        }

        /// <summary>Sets the size of the process-wide CPU thread pool that sessions, trainers and
        /// fine-tuners share by default (electra_set_default_threads): n worker threads, 0 = one
        /// per core. Before the pool starts a later call replaces the size; after, the same size
        /// succeeds and another throws ElectraException with Status.InvalidArgument (the pool
        /// never resizes under handles using it). With 1, those handles run on the calling
        /// thread. A negative n throws ArgumentOutOfRangeException.</summary>
        public static void SetDefaultThreads(int n)
        {
            if (n < 0) throw new ArgumentOutOfRangeException("n", n, "a thread count is at least 0");
            Native.Check(Native.electra_set_default_threads(new UIntPtr((uint)n)));
        }

        /// <summary>The size of the shared CPU thread pool: the threads it runs, or will start
        /// with (electra_default_threads).</summary>
        public static int DefaultThreads()
        {
            UIntPtr n;
            Native.Check(Native.electra_default_threads(out n));
            return (int)Math.Min(n.ToUInt64(), (ulong)int.MaxValue);
        }

        /// <summary>Throws when the loaded library's ABI differs from the one this binding was
        /// written for. Model.Load, Trainer.Create, Trainer.Resume and FineTuner.Create call
        /// it.</summary>
        public static void CheckAbi()
        {
            lock (abiLock)
            {
                if (abiChecked)
                    return;
                uint lib = AbiVersion;
                if (lib != HeaderAbiVersion)
                    throw new ElectraException(Status.Unsupported, string.Format(
                        "ABI mismatch: the binding expects ABI {0}, the loaded libelectra has ABI {1}",
                        HeaderAbiVersion, lib));
                abiChecked = true;
            }
        }
    }

    /// <summary>A model's dimensions: a blittable mirror of electra_model_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ModelInfo
    {
        internal uint structSize;
        private uint vocabSize;
        private uint hiddenSize;
        private uint embeddingSize;
        private uint maxPositionEmbeddings;
        private uint typeVocabSize;
        private uint numHiddenLayers;
        private int hasDiscriminator;
        private int hasGenerator;
        private uint generatorHiddenSize;
        private ulong numParameters;
        private uint numLabels;
        private uint weightFormat;

        /// <summary>V: vocabulary size.</summary>
        public int VocabSize { get { return (int)vocabSize; } }
        /// <summary>The discriminator's hidden width (the generator's when there is none).</summary>
        public int HiddenSize { get { return (int)hiddenSize; } }
        /// <summary>E: embedding width.</summary>
        public int EmbeddingSize { get { return (int)embeddingSize; } }
        /// <summary>Largest seqLen accepted.</summary>
        public int MaxPositionEmbeddings { get { return (int)maxPositionEmbeddings; } }
        /// <summary>Number of token types accepted.</summary>
        public int TypeVocabSize { get { return (int)typeVocabSize; } }
        /// <summary>Encoder layers of the discriminator (else the generator).</summary>
        public int NumHiddenLayers { get { return (int)numHiddenLayers; } }
        public bool HasDiscriminator { get { return hasDiscriminator != 0; } }
        public bool HasGenerator { get { return hasGenerator != 0; } }
        /// <summary>The generator's hidden width (0 without a generator).</summary>
        public int GeneratorHiddenSize { get { return (int)generatorHiddenSize; } }
        public long NumParameters { get { return (long)numParameters; } }
        /// <summary>Labels of the classification head (0 without one).</summary>
        public int NumLabels { get { return (int)numLabels; } }
        /// <summary>True when the Linear weights are int8 (load option "quantize": "int8", or a
        /// directory written by `electra quantize`): inference only.</summary>
        public bool IsInt8 { get { return weightFormat == 1; } }

        public override string ToString()
        {
            return string.Format(
                "ModelInfo(vocab {0}, hidden {1}, embedding {2}, positions {3}, types {4}, layers {5}, disc {6}, gen {7} (hidden {8}), {9} parameters, {10} labels)",
                VocabSize, HiddenSize, EmbeddingSize, MaxPositionEmbeddings, TypeVocabSize, NumHiddenLayers,
                HasDiscriminator, HasGenerator, GeneratorHiddenSize, NumParameters, NumLabels);
        }
    }

    /// <summary>What one training step measured: a blittable mirror of electra_step_stats.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StepStats
    {
        internal uint structSize;
        private ulong step;
        private float loss;
        private float mlmLoss;
        private float discLoss;
        private float discAccuracy;
        private float learningRate;
        private float gradNorm;

        /// <summary>Updates applied so far, this one included.</summary>
        public long Step { get { return (long)step; } }
        /// <summary>gen_weight·MlmLoss + disc_weight·DiscLoss.</summary>
        public float Loss { get { return loss; } }
        /// <summary>Generator cross-entropy at the masked positions.</summary>
        public float MlmLoss { get { return mlmLoss; } }
        /// <summary>Discriminator BCE over real tokens (0 for the mlm objective).</summary>
        public float DiscLoss { get { return discLoss; } }
        /// <summary>Share of real tokens the discriminator labels correctly.</summary>
        public float DiscAccuracy { get { return discAccuracy; } }
        /// <summary>Learning rate this step used.</summary>
        public float LearningRate { get { return learningRate; } }
        /// <summary>Global gradient norm before clipping.</summary>
        public float GradNorm { get { return gradNorm; } }

        public override string ToString()
        {
            return string.Format("StepStats(step {0}, loss {1}, mlm {2}, disc {3}, acc {4}, lr {5}, grad norm {6})",
                Step, Loss, MlmLoss, DiscLoss, DiscAccuracy, LearningRate, GradNorm);
        }
    }

    /// <summary>What one fine-tuning step measured: a blittable mirror of electra_finetune_stats.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FineTuneStats
    {
        internal uint structSize;
        private ulong step;
        private float loss;
        private float accuracy;
        private float learningRate;
        private float gradNorm;

        /// <summary>Updates applied so far, this one included.</summary>
        public long Step { get { return (long)step; } }
        /// <summary>Mean cross-entropy of the batch.</summary>
        public float Loss { get { return loss; } }
        /// <summary>Share of rows classified correctly (before the update).</summary>
        public float Accuracy { get { return accuracy; } }
        /// <summary>Learning rate of this update (before layer-wise scaling).</summary>
        public float LearningRate { get { return learningRate; } }
        /// <summary>Global gradient norm before clipping.</summary>
        public float GradNorm { get { return gradNorm; } }

        public override string ToString()
        {
            return string.Format("FineTuneStats(step {0}, loss {1}, accuracy {2}, lr {3}, grad norm {4})",
                Step, Loss, Accuracy, LearningRate, GradNorm);
        }
    }

    internal static class Inputs
    {
        /// <summary>Validates a batch: ids holds batch*seqLen values; mask and types are null or
        /// hold as many. Returns batch*seqLen.</summary>
        internal static long Check(int[] ids, int[] mask, int[] types, int batch, int seqLen)
        {
            if (ids == null)
                throw new ArgumentNullException("ids");
            if (batch <= 0)
                throw new ArgumentOutOfRangeException("batch", batch, "batch must be positive");
            if (seqLen <= 0)
                throw new ArgumentOutOfRangeException("seqLen", seqLen, "seqLen must be positive");
            long n = (long)batch * seqLen;
            if (ids.Length != n)
                throw new ArgumentException(string.Format("ids holds {0} values, batch*seqLen = {1}", ids.Length, n), "ids");
            if (mask != null && mask.Length != n)
                throw new ArgumentException(string.Format("mask holds {0} values, batch*seqLen = {1}", mask.Length, n), "mask");
            if (types != null && types.Length != n)
                throw new ArgumentException(string.Format("types holds {0} values, batch*seqLen = {1}", types.Length, n), "types");
            return n;
        }
    }
}
