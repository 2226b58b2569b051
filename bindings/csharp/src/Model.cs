using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Electra
{
    /// <summary>Loaded, immutable weights. Safe to share between threads, each with its own
    /// Session. Sessions keep the weights alive, so a Model may be disposed before them.</summary>
    public sealed class Model : IDisposable
    {
        internal readonly ModelHandle Handle;
        private readonly ModelInfo info;

        internal Model(ModelHandle handle)
        {
            Handle = handle;
            var i = new ModelInfo();
            i.structSize = (uint)Marshal.SizeOf(typeof(ModelInfo));
            int st = Native.electra_model_get_info(handle, ref i);
            if (st != 0)
            {
                string msg = Native.LastErrorMessage();
                handle.Dispose();
                throw new ElectraException((Status)st, msg);
            }
            info = i;
        }

        /// <summary>Loads a HuggingFace ELECTRA directory (config.json + model.safetensors) or a
        /// pair layout (path/discriminator, path/generator).</summary>
        public static Model Load(string path)
        {
            Library.CheckAbi();
            byte[] p = Native.Utf8Z(path, "path");
            ModelHandle h;
            int st = Native.electra_model_load(p, out h);
            Native.CheckCreated(st, h);
            return new Model(h);
        }

        /// <summary>Model.Load(path) with options: optionsJson is null (the defaults, as
        /// Load(path)) or a JSON object with the keys allow_unused_tensors (bool, default false:
        /// tensors the config does not account for throw ElectraException with Status.Format)
        /// and quantize ("f32", the default, or "int8": quantize an f32 model to int8 as it
        /// loads, for faster inference within ~1% of f32; training refuses it with
        /// Status.Unsupported). Unknown keys throw Status.InvalidArgument.</summary>
        public static Model Load(string path, string optionsJson)
        {
            Library.CheckAbi();
            byte[] p = Native.Utf8Z(path, "path");
            byte[] o = optionsJson == null ? null : Native.Utf8Z(optionsJson, "optionsJson");
            ModelHandle h;
            int st = Native.electra_model_load_with_options(p, o, out h);
            Native.CheckCreated(st, h);
            return new Model(h);
        }

        /// <summary>Load(path, optionsJson) with the options as a dictionary
        /// (e.g. { "allow_unused_tensors", true }), serialised to JSON.</summary>
        public static Model Load(string path, IDictionary<string, object> options)
        {
            return Load(path, options == null ? null : Json.Write(options));
        }

        /// <summary>Loads one HF tower (an ElectraForPreTraining, ElectraForMaskedLM or
        /// ElectraForSequenceClassification checkpoint) from the bytes of its config.json and
        /// model.safetensors held in memory (an app's bundled asset). The weights are copied: both
        /// arrays may be reused once this returns. optionsJson as Load(path, optionsJson). An
        /// empty, truncated or corrupt buffer throws ElectraException with Status.Format. A model
        /// from memory has no tokenizer of its own: pass one in TextOptions.Tokenizer.</summary>
        public static unsafe Model LoadFromMemory(byte[] configJson, byte[] weights, string optionsJson = null)
        {
            if (configJson == null)
                throw new ArgumentNullException("configJson");
            if (weights == null)
                throw new ArgumentNullException("weights");
            Library.CheckAbi();
            byte[] o = optionsJson == null ? null : Native.Utf8Z(optionsJson, "optionsJson");
            // Empty arrays are passed as valid pointers with length 0 (a Format error, not NULL).
            byte[] c = configJson.Length == 0 ? new byte[1] : configJson, w = weights.Length == 0 ? new byte[1] : weights;
            ModelHandle h;
            int st;
            fixed (byte* pc = c)
            fixed (byte* pw = w)
                st = Native.electra_model_load_from_memory(pc, Native.Size(configJson.Length), pw, Native.Size(weights.Length), o, out h);
            Native.CheckCreated(st, h);
            return new Model(h);
        }

        /// <summary>The tokenizer saved beside the model's weights (tokenizer.json or vocab.txt
        /// in the directory Load read), shared with the model: dispose it when done. A model
        /// without one (or loaded from memory) throws ElectraException with Status.Unsupported,
        /// as does one whose tokenizer could not be read or has more ids than the model.</summary>
        public Tokenizer Tokenizer()
        {
            ThrowIfDisposed();
            TokenizerHandle h;
            int st = Native.electra_model_tokenizer(Handle, out h);
            Native.CheckCreated(st, h);
            return new Tokenizer(h);
        }

        private string[] labels;

        /// <summary>The names of the classification labels, by id (config.json's id2label;
        /// LABEL_i where it has none); empty without a classifier.</summary>
        public string[] Labels
        {
            get
            {
                ThrowIfDisposed();
                if (labels == null)
                {
                    var l = new string[info.NumLabels];
                    for (int i = 0; i < l.Length; i++)
                    {
                        UIntPtr at = Native.Size(i);
                        l[i] = Native.ReadString((byte[] buf, UIntPtr cap, out UIntPtr len) =>
                            Native.electra_model_label_name(Handle, at, buf, cap, out len));
                    }
                    labels = l;
                }
                return (string[])labels.Clone();
            }
        }

        /// <summary>The model's dimensions.</summary>
        public ModelInfo Info
        {
            get
            {
                ThrowIfDisposed();
                return info;
            }
        }

        /// <summary>True once Dispose has run.</summary>
        public bool IsDisposed { get { return Handle.IsClosed; } }

        /// <summary>Writes the pair layout under dir (dir/discriminator, dir/generator).</summary>
        public void Save(string dir)
        {
            byte[] d = Native.Utf8Z(dir, "dir");
            ThrowIfDisposed();
            Native.Check(Native.electra_model_save(Handle, d));
        }

        /// <summary>A new inference session over this model.</summary>
        public Session CreateSession()
        {
            return new Session(this);
        }

        /// <summary>A new inference session with options (see Session(Model, string)): null or
        /// a JSON object with the keys device ("cpu", "cuda", "cuda:N") and threads.</summary>
        public Session CreateSession(string optionsJson)
        {
            return new Session(this, optionsJson);
        }

        /// <summary>CreateSession(optionsJson) with the options as a dictionary.</summary>
        public Session CreateSession(IDictionary<string, object> options)
        {
            return new Session(this, options);
        }

        public void Dispose()
        {
            Handle.Dispose();
        }

        internal void ThrowIfDisposed()
        {
            if (Handle.IsClosed)
                throw new ObjectDisposedException("Electra.Model");
        }
    }
}
