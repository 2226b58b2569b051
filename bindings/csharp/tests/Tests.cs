using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;

namespace Electra.Tests
{
    internal static class Tests
    {
        // ---------------------------------------------------------------- fixtures and helpers

        private static readonly string[] Cases = { "emb_lt_hidden", "emb_eq_hidden", "gelu_new_act", "relu_act" };
        private static readonly string Root = FindRoot();
        private static readonly string TempRoot = Path.Combine(Path.GetTempPath(),
            "electra-csharp-" + System.Diagnostics.Process.GetCurrentProcess().Id);

        // The repository root: $ELECTRA_REPO, else the first parent of the working directory
        // holding tests/fixtures.
        private static string FindRoot()
        {
            string env = Environment.GetEnvironmentVariable("ELECTRA_REPO");
            if (!string.IsNullOrEmpty(env)) return env;
            for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d != null; d = d.Parent)
                if (Directory.Exists(Path.Combine(d.FullName, "tests", "fixtures"))) return d.FullName;
            throw new DirectoryNotFoundException("set ELECTRA_REPO to the repository root");
        }

        private static string Fixture(params string[] parts)
        {
            return Path.Combine(new[] { Root, "tests", "fixtures" }.Concat(parts).ToArray());
        }

        private static string TempDir(string name)
        {
            string d = Path.Combine(TempRoot, name);
            if (Directory.Exists(d)) Directory.Delete(d, true);
            Directory.CreateDirectory(d);
            return d;
        }

        internal static void Cleanup()
        {
            if (Directory.Exists(TempRoot)) Directory.Delete(TempRoot, true);
        }

        private sealed class Expected
        {
            public int[] Ids, Mask, Types;
            public int Batch, SeqLen;
            public Dictionary<string, Tensor> F;
            public float[] Floats(string name) { return F[name].Floats(); }
            public int Dim(string name, int axis) { return F[name].Shape[axis]; }
        }

        private static Expected Load(string c)
        {
            var f = SafeTensors.Read(Fixture(c, "expected.safetensors"));
            var ids = f["input_ids"];
            return new Expected
            {
                Ids = ids.Ints(), Mask = f["attention_mask"].Ints(), Types = f["token_type_ids"].Ints(),
                Batch = ids.Shape[0], SeqLen = ids.Shape[1], F = f,
            };
        }

        // |got - want| <= 1e-6·max|want| + 1e-5·|want| elementwise, as the Rust parity tests.
        private static void AssertClose(string what, float[] got, float[] want)
        {
            Assert.Equal(want.Length, got.Length, what + " length");
            double scale = want.Max(w => Math.Abs((double)w));
            double atol = 1e-6 * scale;
            for (int i = 0; i < got.Length; i++)
            {
                double diff = Math.Abs((double)got[i] - want[i]);
                if (!(diff <= atol + 1e-5 * Math.Abs((double)want[i])))
                    throw new AssertionException(string.Format("{0}: element {1}: got {2:R} want {3:R}", what, i, got[i], want[i]));
            }
        }

        private static bool SameBits(float[] a, float[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
                if (BitConverter.ToInt32(BitConverter.GetBytes(a[i]), 0) != BitConverter.ToInt32(BitConverter.GetBytes(b[i]), 0))
                    return false;
            return true;
        }

        private static void AssertSameBits(string what, float[] got, float[] want)
        {
            Assert.True(SameBits(got, want), what + ": results differ bitwise");
        }

        private static bool Finite(float x) { return !float.IsNaN(x) && !float.IsInfinity(x); }

        // Runs body on n threads and rethrows the first failure.
        private static void OnThreads(int n, Action<int> body)
        {
            var errors = new List<Exception>();
            var threads = Enumerable.Range(0, n).Select(w => new Thread(() =>
            {
                try { body(w); }
                catch (Exception e) { lock (errors) errors.Add(e); }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            if (errors.Count > 0)
                throw new AssertionException(string.Format("{0} thread(s) failed; first: {1}", errors.Count, errors[0]));
        }

        // ---------------------------------------------------------------- library

        [Test]
        private static void VersionAndAbi()
        {
            Assert.True(Regex.IsMatch(Library.Version, @"^\d+\.\d+\.\d+"), "Version = " + Library.Version);
            Assert.Equal(Library.HeaderAbiVersion, Library.AbiVersion, "runtime ABI vs binding");
            Library.CheckAbi();
            string header = File.ReadAllText(Path.Combine(Root, "include", "electra.h"));
            var abi = Regex.Match(header, @"#define ELECTRA_ABI_VERSION (\d+)");
            Assert.True(abi.Success, "electra.h defines ELECTRA_ABI_VERSION");
            Assert.Equal(Library.HeaderAbiVersion, uint.Parse(abi.Groups[1].Value), "ELECTRA_ABI_VERSION in electra.h");
            // Every status code of the header is mirrored by the Status enum, and vice versa.
            var codes = Regex.Matches(header, @"#define ELECTRA_(OK|ERR_[A-Z_]+) (\d+)").Cast<Match>().ToList();
            Assert.Equal(Enum.GetValues(typeof(Status)).Length, codes.Count, "number of status codes");
            foreach (var m in codes)
            {
                string name = string.Concat(m.Groups[1].Value.Replace("ERR_", "").Split('_')
                    .Select(w => w.Substring(0, 1) + w.Substring(1).ToLowerInvariant()));
                Status s;
                Assert.True(Enum.TryParse(name, out s), "Status lacks " + name);
                Assert.Equal(int.Parse(m.Groups[2].Value), (int)s, "Status." + name);
            }
            Assert.Equal("invalid argument", Library.StatusName(Status.InvalidArgument), "status name");
            Assert.Equal("cancelled", Library.StatusName(Status.Cancelled), "status name");
            Assert.Equal("unknown status", Library.StatusName((Status)999), "status name");
        }

        [Test]
        private static void StructLayoutsMatchTheHeader()
        {
            // C layout on LP64 targets (x86-64, aarch64). electra_model_info: ten 4-byte fields, a
            // uint64 at 40, a uint32 at 48, padded to 56. electra_step_stats: uint32, padding,
            // uint64 at 8, six floats. electra_finetune_stats: uint32, padding, uint64, four floats.
            Assert.Equal(56, Marshal.SizeOf(typeof(ModelInfo)), "sizeof(electra_model_info)");
            Assert.Equal(36, (int)Marshal.OffsetOf(typeof(ModelInfo), "generatorHiddenSize"), "offsetof generator_hidden_size");
            Assert.Equal(40, (int)Marshal.OffsetOf(typeof(ModelInfo), "numParameters"), "offsetof num_parameters");
            Assert.Equal(48, (int)Marshal.OffsetOf(typeof(ModelInfo), "numLabels"), "offsetof num_labels");
            Assert.Equal(40, Marshal.SizeOf(typeof(StepStats)), "sizeof(electra_step_stats)");
            Assert.Equal(8, (int)Marshal.OffsetOf(typeof(StepStats), "step"), "offsetof step");
            Assert.Equal(36, (int)Marshal.OffsetOf(typeof(StepStats), "gradNorm"), "offsetof grad_norm");
            Assert.Equal(32, Marshal.SizeOf(typeof(FineTuneStats)), "sizeof(electra_finetune_stats)");
            Assert.Equal(8, (int)Marshal.OffsetOf(typeof(FineTuneStats), "step"), "offsetof step");
            Assert.Equal(28, (int)Marshal.OffsetOf(typeof(FineTuneStats), "gradNorm"), "offsetof grad_norm");
            // The header's structs have exactly the fields mirrored here, in this order.
            string header = File.ReadAllText(Path.Combine(Root, "include", "electra.h"));
            foreach (var mirror in new[] { Tuple.Create("electra_model_info", typeof(ModelInfo)),
                Tuple.Create("electra_step_stats", typeof(StepStats)), Tuple.Create("electra_finetune_stats", typeof(FineTuneStats)) })
            {
                var body = Regex.Match(header, @"typedef struct \{([^}]*)\} " + mirror.Item1 + ";");
                Assert.True(body.Success, "electra.h defines " + mirror.Item1);
                var cFields = Regex.Matches(Regex.Replace(body.Groups[1].Value, @"/\*.*?\*/", "", RegexOptions.Singleline),
                    @"\b(\w+);").Cast<Match>().Select(m => m.Groups[1].Value.Replace("_", "")).ToList();
                var csFields = mirror.Item2.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic
                    | System.Reflection.BindingFlags.Public).OrderBy(f => (int)Marshal.OffsetOf(mirror.Item2, f.Name))
                    .Select(f => f.Name.ToLowerInvariant()).ToList();
                Assert.Equal(string.Join(",", cFields), string.Join(",", csFields), mirror.Item1 + " fields");
            }
        }

        // ---------------------------------------------------------------- inference parity

        [Test]
        private static void DiscriminatorParity()
        {
            foreach (var c in Cases)
            {
                var e = Load(c);
                using (var m = Model.Load(Fixture(c, "discriminator")))
                using (var s = m.CreateSession())
                {
                    var info = m.Info;
                    Assert.True(info.HasDiscriminator && !info.HasGenerator && info.HiddenSize == e.Dim("disc_hidden", 2)
                        && info.NumParameters > 0 && info.MaxPositionEmbeddings >= e.SeqLen, c + ": " + info);
                    AssertClose(c + " disc_logits", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_logits"));
                    AssertClose(c + " disc_hidden", s.HiddenStates(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_hidden"));
                    Assert.Fails(c + " generator logits without a generator", Status.Unsupported,
                        () => s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen));
                }
            }
        }

        [Test]
        private static void GeneratorParity()
        {
            foreach (var c in Cases)
            {
                var e = Load(c);
                using (var m = Model.Load(Fixture(c, "generator")))
                using (var s = new Session(m))
                {
                    Assert.True(!m.Info.HasDiscriminator && m.Info.HasGenerator && m.Info.VocabSize == e.Dim("gen_logits", 2), c + ": " + m.Info);
                    AssertClose(c + " gen_logits", s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("gen_logits"));
                    Assert.Fails(c + " discriminate without a discriminator", Status.Unsupported,
                        () => s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen));
                }
            }
        }

        [Test]
        private static void PairLayoutParity()
        {
            foreach (var c in Cases)
            {
                var e = Load(c);
                using (var m = Model.Load(Fixture(c)))
                using (var s = m.CreateSession())
                {
                    Assert.True(m.Info.HasDiscriminator && m.Info.HasGenerator && m.Info.GeneratorHiddenSize == e.Dim("gen_hidden", 2), c + ": " + m.Info);
                    AssertClose(c + " disc_logits", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_logits"));
                    AssertClose(c + " gen_logits", s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("gen_logits"));
                }
            }
        }

        [Test]
        private static void OptionalInputsAndOutputBuffers()
        {
            var e = Load("emb_lt_hidden");
            using (var m = Model.Load(Fixture("emb_lt_hidden")))
            using (var s = m.CreateSession())
            {
                int n = e.Batch * e.SeqLen;
                var ones = Enumerable.Repeat(1, n).ToArray();
                var zeros = new int[n];
                AssertSameBits("null mask/types = ones/zeros", s.Discriminate(e.Ids, e.Batch, e.SeqLen),
                    s.Discriminate(e.Ids, ones, zeros, e.Batch, e.SeqLen));
                var buf = Enumerable.Repeat(-42f, n * s.Info.VocabSize + 5).ToArray();
                s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen, buf);
                AssertClose("GeneratorLogits into a buffer", buf.Take(n * s.Info.VocabSize).ToArray(), e.Floats("gen_logits"));
                Assert.Equal(-42f, buf[buf.Length - 1], "beyond the result");
                var hb = new float[n * s.Info.HiddenSize];
                s.HiddenStates(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen, hb);
                AssertClose("HiddenStates into a buffer", hb, e.Floats("disc_hidden"));
                var db = new float[n];
                s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen, db);
                AssertClose("Discriminate into a buffer", db, e.Floats("disc_logits"));
            }
        }

        [Test]
        private static void SharedModelManyThreads()
        {
            var e = Load("emb_eq_hidden");
            using (var m = Model.Load(Fixture("emb_eq_hidden")))
            {
                float[] refD, refG;
                using (var s = m.CreateSession())
                {
                    refD = s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                    refG = s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                }
                OnThreads(16, w =>
                {
                    using (var s = m.CreateSession())
                        for (int i = 0; i < 25; i++)
                        {
                            bool disc = (w + i) % 2 == 0;
                            var got = disc ? s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen)
                                           : s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                            AssertSameBits(string.Format("thread {0} iteration {1}", w, i), got, disc ? refD : refG);
                        }
                });
            }
        }

        [Test]
        private static void OneSessionManyThreads()
        {
            var e = Load("relu_act");
            using (var m = Model.Load(Fixture("relu_act", "discriminator")))
            using (var s = m.CreateSession())
            {
                var want = e.Floats("disc_hidden");
                OnThreads(8, w =>
                {
                    for (int i = 0; i < 10; i++)
                        AssertClose("shared session", s.HiddenStates(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), want);
                });
            }
        }

        [Test]
        private static void SessionOutlivesModel()
        {
            var e = Load("gelu_new_act");
            var m = Model.Load(Fixture("gelu_new_act", "discriminator"));
            using (var s = m.CreateSession())
            {
                m.Dispose();
                Assert.True(m.IsDisposed, "IsDisposed");
                AssertClose("after Model.Dispose", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_logits"));
            }
        }

        [Test]
        private static void FinalizersFreeForgottenHandles()
        {
            var e = Load("gelu_new_act");
            for (int i = 0; i < 20; i++)
            {
                var s = Model.Load(Fixture("gelu_new_act")).CreateSession();
                s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                Trainer.Create("tiny", TinyOptions(null)).GetModel();
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        // ---------------------------------------------------------------- errors

        [Test]
        private static void LoadErrors()
        {
            string missing = Path.Combine(TempDir("load-errors"), "no-such-model");
            Assert.Fails("missing dir", Status.Io, () => Model.Load(missing), "no-such-model");
            Assert.Throws<ArgumentException>("NUL in path", () => Model.Load("bad\0path"));
            Assert.Throws<ArgumentNullException>("null path", () => Model.Load(null));
            string dir = TempDir("corrupt");
            File.Copy(Fixture("relu_act", "discriminator", "config.json"), Path.Combine(dir, "config.json"));
            File.WriteAllBytes(Path.Combine(dir, "model.safetensors"),
                new byte[] { 16, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'n', (byte)'o', (byte)'t' });
            Assert.Fails("corrupt weights", Status.Format, () => Model.Load(dir), "model.safetensors");
        }

        [Test]
        private static void LoadWithOptionsUnusedTensors()
        {
            // A config of 1 layer over a 2-layer file: refused by default, loaded with the option.
            string dir = TempDir("unused-tensors");
            File.Copy(Fixture("emb_lt_hidden", "discriminator", "model.safetensors"), Path.Combine(dir, "model.safetensors"));
            string cfg = File.ReadAllText(Fixture("emb_lt_hidden", "discriminator", "config.json"));
            cfg = Regex.Replace(cfg, "\"num_hidden_layers\":\\s*2", "\"num_hidden_layers\": 1");
            File.WriteAllText(Path.Combine(dir, "config.json"), cfg);
            Assert.Fails("1-layer config over 2 layers", Status.Format, () => Model.Load(dir), "allow_unused_tensors");
            Assert.Fails("unknown option", Status.InvalidArgument, () => Model.Load(dir, "{\"no_such_key\": true}"));
            using (var m = Model.Load(dir, new Dictionary<string, object> { { "allow_unused_tensors", true } }))
                Assert.Equal(1, m.Info.NumHiddenLayers, "NumHiddenLayers with allow_unused_tensors");
        }

        [Test]
        private static void LoadQuantizedInt8()
        {
            // "quantize": "int8": an int8 model whose logits stay within ~1% of the f32 ones (and
            // differ from them); saved, it loads back int8; fine-tuning refuses it.
            string src = Fixture("emb_lt_hidden", "discriminator");
            var e = Load("emb_lt_hidden");
            using (var f = Model.Load(src))
            using (var q = Model.Load(src, new Dictionary<string, object> { { "quantize", "int8" } }))
            {
                Assert.True(q.Info.IsInt8 && !f.Info.IsInt8, "IsInt8");
                float[] a, b;
                using (var s = q.CreateSession()) a = s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                using (var s = f.CreateSession()) b = s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                double worst = 0, top = 0;
                for (int i = 0; i < b.Length; i++)
                {
                    worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
                    top = Math.Max(top, Math.Abs(b[i]));
                }
                Assert.True(worst > 0 && worst < 0.05 * top, "int8 logits within 5% of f32: " + worst + " of " + top);
                string dir = TempDir("int8");
                q.Save(dir);
                using (var back = Model.Load(dir))
                    Assert.True(back.Info.IsInt8, "saved int8 loads as int8");
                Assert.Fails("fine-tuning int8", Status.Unsupported, () => FineTuner.Create(dir, 2), "int8");
            }
        }

        [Test]
        private static void InputErrors()
        {
            var e = Load("emb_lt_hidden");
            using (var m = Model.Load(Fixture("emb_lt_hidden")))
            using (var s = m.CreateSession())
            {
                var info = m.Info;
                int n = e.Batch * e.SeqLen;
                var bad = (int[])e.Ids.Clone();
                bad[3] = info.VocabSize;
                Assert.Fails("id = vocab_size", Status.InvalidArgument, () => s.Discriminate(bad, e.Mask, e.Types, e.Batch, e.SeqLen),
                    info.VocabSize.ToString());
                bad[3] = -1;
                Assert.Fails("negative id", Status.InvalidArgument, () => s.Discriminate(bad, e.Mask, e.Types, e.Batch, e.SeqLen));
                var badTypes = (int[])e.Types.Clone();
                badTypes[0] = info.TypeVocabSize;
                Assert.Fails("token type out of range", Status.InvalidArgument, () => s.HiddenStates(e.Ids, e.Mask, badTypes, e.Batch, e.SeqLen));
                var badMask = (int[])e.Mask.Clone();
                badMask[0] = 7;
                Assert.Fails("mask not 0/1", Status.InvalidArgument, () => s.Discriminate(e.Ids, badMask, e.Types, e.Batch, e.SeqLen));
                var tooLong = Enumerable.Repeat(5, info.MaxPositionEmbeddings + 1).ToArray();
                Assert.Fails("seqLen > max positions", Status.InvalidArgument, () => s.Discriminate(tooLong, 1, tooLong.Length),
                    "max_position_embeddings");

                // Checked by the binding before anything is pinned.
                Assert.Throws<ArgumentException>("short ids", () => s.Discriminate(e.Ids.Take(n - 1).ToArray(), e.Mask, e.Types, e.Batch, e.SeqLen));
                Assert.Throws<ArgumentException>("short mask", () => s.Discriminate(e.Ids, e.Mask.Take(n - 1).ToArray(), e.Types, e.Batch, e.SeqLen));
                Assert.Throws<ArgumentException>("empty types", () => s.GeneratorLogits(e.Ids, e.Mask, new int[0], e.Batch, e.SeqLen));
                Assert.Throws<ArgumentNullException>("null ids", () => s.Discriminate(null, e.Batch, e.SeqLen));
                Assert.Throws<ArgumentOutOfRangeException>("empty batch", () => s.Discriminate(new int[0], 0, 4));
                Assert.Throws<ArgumentOutOfRangeException>("negative seqLen", () => s.Discriminate(e.Ids, 1, -n));
                Assert.Throws<ArgumentException>("short output", () => s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen, new float[n - 1]));
                Assert.Throws<ArgumentNullException>("null output", () => s.HiddenStates(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen, null));

                AssertClose("after refusals", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_logits"));
            }
        }

        [Test]
        private static void DisposedHandles()
        {
            var e = Load("relu_act");
            var m = Model.Load(Fixture("relu_act"));
            var s = m.CreateSession();
            s.Dispose();
            s.Dispose();
            Assert.True(s.IsDisposed, "session IsDisposed");
            Assert.Throws<ObjectDisposedException>("disposed session", () => s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen));
            m.Dispose();
            m.Dispose();
            Assert.Throws<ObjectDisposedException>("disposed model Info", () => { var i = m.Info; });
            Assert.Throws<ObjectDisposedException>("disposed model CreateSession", () => m.CreateSession());
            Assert.Throws<ObjectDisposedException>("disposed model Save", () => m.Save(TempDir("disposed-save")));
            Assert.Throws<ArgumentNullException>("null model", () => new Session(null));

            var t = Trainer.Create("tiny", TinyOptions(null));
            t.Dispose();
            t.Dispose();
            t.Cancel(); // a no-op
            var b = TrainBatch(0);
            Assert.Throws<ObjectDisposedException>("disposed trainer Step", () => t.Step(b[0], b[1], b[2], TrainB, TrainT));
            Assert.Throws<ObjectDisposedException>("disposed trainer Save", () => t.Save(TempDir("disposed-tsave")));
            Assert.Throws<ObjectDisposedException>("disposed trainer Export", () => t.Export(TempDir("disposed-export")));
            Assert.Throws<ObjectDisposedException>("disposed trainer GetModel", () => t.GetModel());
        }

        [Test]
        private static void ErrorMessagesPerThread()
        {
            string root = TempDir("per-thread");
            OnThreads(16, w =>
            {
                for (int i = 0; i < 20; i++)
                {
                    string name = string.Format("missing-{0}-{1}", w, i);
                    var ex = Assert.Fails(name, Status.Io, () => Model.Load(Path.Combine(root, name)));
                    Assert.True(Regex.IsMatch(ex.NativeMessage, Regex.Escape(name) + @"(\W|$)"),
                        string.Format("thread {0}: message \"{1}\" is not about {2}", w, ex.NativeMessage, name));
                }
            });
        }

        [Test]
        private static void SaveModelRoundTrip()
        {
            var e = Load("emb_lt_hidden");
            string dir = Path.Combine(TempDir("save-model"), "saved");
            using (var m = Model.Load(Fixture("emb_lt_hidden")))
            using (var s = m.CreateSession())
            {
                m.Save(dir);
                Assert.True(File.Exists(Path.Combine(dir, "discriminator", "config.json")), "discriminator saved");
                Assert.True(File.Exists(Path.Combine(dir, "generator", "config.json")), "generator saved");
                using (var m2 = Model.Load(dir))
                using (var s2 = m2.CreateSession())
                    AssertSameBits("saved model", s2.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen),
                        s.GeneratorLogits(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen));
            }
        }

        // ---------------------------------------------------------------- fine-tuning

        // cls_train.safetensors of emb_lt_hidden: a batch, its labels and PyTorch's logits.
        private static Expected LoadCls(out int[] labels)
        {
            var f = SafeTensors.Read(Fixture("emb_lt_hidden", "cls_train.safetensors"));
            var ids = f["input_ids"];
            labels = f["labels"].Ints();
            return new Expected
            {
                Ids = ids.Ints(), Mask = f["attention_mask"].Ints(), Types = f["token_type_ids"].Ints(),
                Batch = ids.Shape[0], SeqLen = ids.Shape[1], F = f,
            };
        }

        [Test]
        private static void ClassifierParity()
        {
            int[] labels;
            var c = LoadCls(out labels);
            using (var m = Model.Load(Fixture("emb_lt_hidden", "classifier")))
            using (var s = m.CreateSession())
            {
                Assert.Equal(3, m.Info.NumLabels, "NumLabels");
                var logits = s.Classify(c.Ids, c.Mask, c.Types, c.Batch, c.SeqLen);
                AssertClose("cls_logits", logits, c.Floats("cls_logits"));
                var buf = new float[c.Batch * 3];
                s.Classify(c.Ids, c.Mask, c.Types, c.Batch, c.SeqLen, buf);
                AssertSameBits("Classify into a buffer", buf, logits);
                Assert.Throws<ArgumentException>("short output", () => s.Classify(c.Ids, c.Mask, c.Types, c.Batch, c.SeqLen, new float[c.Batch * 3 - 1]));
            }
            using (var m = Model.Load(Fixture("emb_lt_hidden", "discriminator")))
            using (var s = m.CreateSession())
            {
                Assert.Equal(0, m.Info.NumLabels, "NumLabels of a discriminator");
                Assert.Fails("classify without a head", Status.Unsupported, () => s.Classify(c.Ids, c.Mask, c.Types, c.Batch, c.SeqLen), "classification head");
            }
        }

        [Test]
        private static void FineTunerTrainsSavesAndContinues()
        {
            int[] labels;
            var c = LoadCls(out labels);
            string dir = Path.Combine(TempDir("finetune"), "cls");
            using (var f = FineTuner.Create(Fixture("emb_lt_hidden", "discriminator"), 3,
                new Dictionary<string, object> { { "learning_rate", 1e-3 }, { "seed", 3 }, { "threads", 1 } }))
            {
                FineTuneStats first = default(FineTuneStats), last = default(FineTuneStats);
                for (int k = 1; k <= 10; k++)
                {
                    var s = f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen);
                    Assert.True(s.Step == k && Finite(s.Loss) && s.Loss > 0 && Finite(s.GradNorm) && s.Accuracy >= 0 && s.Accuracy <= 1, s.ToString());
                    if (k == 1) first = s;
                    last = s;
                }
                Assert.True(last.Loss < first.Loss, string.Format("loss did not fall: {0} -> {1}", first.Loss, last.Loss));
                f.Step(c.Ids, null, null, labels, c.Batch, c.SeqLen);
                f.Save(dir);
            }
            using (var m = Model.Load(dir))
            using (var s = m.CreateSession())
            {
                Assert.Equal(3, m.Info.NumLabels, "saved NumLabels");
                var logits = s.Classify(c.Ids, c.Mask, c.Types, c.Batch, c.SeqLen);
                Assert.True(logits.Length == c.Batch * 3 && logits.All(Finite), "classify the saved classifier");
            }
            using (var g = FineTuner.Create(dir, 0, "{\"threads\": 1}"))
                Assert.Equal(1L, g.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen).Step, "continued fine-tuning");
        }

        // The "pool" option: a mean-pooled head learns, is saved with "classifier_pooling": "mean",
        // reloads, and is continued only as a mean-pooled head.
        [Test]
        private static void FineTunerMeanPooling()
        {
            int[] labels;
            var c = LoadCls(out labels);
            string dir = Path.Combine(TempDir("finetune-mean"), "cls");
            using (var f = FineTuner.Create(Fixture("emb_lt_hidden", "discriminator"), 3,
                new Dictionary<string, object> { { "learning_rate", 1e-3 }, { "threads", 1 }, { "pool", "mean" } }))
            {
                var first = f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen);
                FineTuneStats last = first;
                for (int k = 2; k <= 10; k++) last = f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen);
                Assert.True(last.Loss < first.Loss, string.Format("loss did not fall: {0} -> {1}", first.Loss, last.Loss));
                f.Save(dir);
            }
            string cfg = File.ReadAllText(Path.Combine(dir, "config.json"));
            Assert.True(cfg.Contains("\"classifier_pooling\": \"mean\""), cfg);
            using (var m = Model.Load(dir))
            using (var s = m.CreateSession())
                Assert.True(s.Classify(c.Ids, c.Mask, c.Types, c.Batch, c.SeqLen).All(Finite), "classify the mean-pooled classifier");
            Assert.Fails("a [CLS] head over a mean-pooled one", Status.InvalidArgument, () => FineTuner.Create(dir, 0, "{\"pool\": \"cls\"}"), "pools mean");
            using (var g = FineTuner.Create(dir, 0, "{\"threads\": 1}"))
                Assert.Equal(1L, g.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen).Step, "continued with its own pooling");
            Assert.Fails("unknown pooling", Status.InvalidArgument, () => FineTuner.Create(Fixture("emb_lt_hidden", "discriminator"), 3, "{\"pool\": \"max\"}"), "pool");
        }

        [Test]
        private static void FineTunerErrors()
        {
            int[] labels;
            var c = LoadCls(out labels);
            string disc = Fixture("emb_lt_hidden", "discriminator");
            Assert.Fails("0 labels for a new head", Status.InvalidArgument, () => FineTuner.Create(disc, 0), "two labels");
            Assert.Throws<ArgumentOutOfRangeException>("negative labels", () => FineTuner.Create(disc, -1));
            using (var fromMlm = FineTuner.Create(Fixture("emb_lt_hidden", "generator"), 2))
            {
                // A lone masked-LM checkpoint (the mlm objective's output) has the same encoder.
                Assert.True(fromMlm != null, "a generator checkpoint fine-tunes too");
            }
            Assert.Fails("unknown option", Status.InvalidArgument, () => FineTuner.Create(disc, 2, "{\"layerwise_lr_decy\": 0.9}"), "layerwise_lr_decy");
            Assert.Fails("missing dir", Status.Io, () => FineTuner.Create(Path.Combine(TempDir("ft-missing"), "nope"), 2), "nope");
            var f = FineTuner.Create(disc, 3, "{\"threads\": 1}");
            Assert.Fails("label out of range", Status.InvalidArgument, () => f.Step(c.Ids, c.Mask, c.Types, new[] { 0, 1, 3 }, c.Batch, c.SeqLen), "label 3");
            Assert.Throws<ArgumentException>("short labels", () => f.Step(c.Ids, c.Mask, c.Types, labels.Take(c.Batch - 1).ToArray(), c.Batch, c.SeqLen));
            Assert.Throws<ArgumentNullException>("null labels", () => f.Step(c.Ids, c.Mask, c.Types, null, c.Batch, c.SeqLen));
            Assert.Throws<ArgumentException>("short ids", () => f.Step(c.Ids.Skip(1).ToArray(), c.Mask, c.Types, labels, c.Batch, c.SeqLen));
            Assert.Equal(1L, f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen).Step, "after refused steps");
            f.Dispose();
            f.Dispose();
            Assert.Throws<ObjectDisposedException>("disposed fine-tuner Step", () => f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen));
            Assert.Throws<ObjectDisposedException>("disposed fine-tuner Save", () => f.Save(TempDir("ft-disposed")));
        }

        [Test]
        private static void FineTunerConcurrentSteps()
        {
            int[] labels;
            var c = LoadCls(out labels);
            using (var f = FineTuner.Create(Fixture("emb_lt_hidden", "discriminator"), 3, "{\"threads\": 1}"))
            {
                OnThreads(4, w =>
                {
                    for (int i = 0; i < 3; i++) f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen);
                });
                Assert.Equal(13L, f.Step(c.Ids, c.Mask, c.Types, labels, c.Batch, c.SeqLen).Step, "after 12 concurrent steps");
            }
        }

        // ---------------------------------------------------------------- training

        private const int TrainB = 4, TrainT = 16, TrainVocab = 200;

        private static Dictionary<string, object> TinyOptions(Dictionary<string, object> extra)
        {
            var o = new Dictionary<string, object>
            {
                { "vocab_size", TrainVocab }, { "max_seq_len", 32 }, { "mask_token_id", 4 },
                { "special_token_ids", new[] { 0, 1, 2, 3, 4 } }, { "threads", 1 }, { "seed", 7 },
            };
            if (extra != null)
                foreach (var kv in extra) o[kv.Key] = kv.Value;
            return o;
        }

        // Batch k: [CLS]=2 ... [SEP]=3, padded with 0 (mask 0); returns { ids, mask, types }.
        private static int[][] TrainBatch(int k)
        {
            int n = TrainB * TrainT;
            int[] ids = new int[n], mask = new int[n], types = new int[n];
            for (int r = 0; r < TrainB; r++)
            {
                int len = TrainT - (r * 3 + k) % 7;
                for (int i = 0; i < len; i++)
                {
                    int p = r * TrainT + i;
                    ids[p] = i == 0 ? 2 : i == len - 1 ? 3 : 5 + (r * 17 + i * 7 + k * 3) % (TrainVocab - 5);
                    mask[p] = 1;
                    types[p] = i >= len / 2 ? 1 : 0;
                }
            }
            return new[] { ids, mask, types };
        }

        // Field by field: the struct's padding bytes are not part of the value.
        private static bool SameStats(StepStats a, StepStats b)
        {
            return a.Step == b.Step && SameBits(new[] { a.Loss, a.MlmLoss, a.DiscLoss, a.DiscAccuracy, a.LearningRate, a.GradNorm },
                new[] { b.Loss, b.MlmLoss, b.DiscLoss, b.DiscAccuracy, b.LearningRate, b.GradNorm });
        }

        private static StepStats Step(Trainer t, int k)
        {
            var b = TrainBatch(k);
            return t.Step(b[0], b[1], b[2], TrainB, TrainT);
        }

        [Test]
        private static void TrainerSteps()
        {
            using (var t = Trainer.Create("tiny", TinyOptions(null)))
            {
                for (int k = 1; k <= 4; k++)
                {
                    var s = Step(t, k);
                    Assert.Equal((long)k, s.Step, "Step");
                    Assert.True(Finite(s.Loss) && s.Loss > 0 && Finite(s.MlmLoss) && Finite(s.DiscLoss) && Finite(s.GradNorm)
                        && s.DiscAccuracy >= 0 && s.DiscAccuracy <= 1 && s.LearningRate >= 0, s.ToString());
                }
                Assert.Equal(5L, t.Step(TrainBatch(0)[0], TrainB, TrainT).Step, "step without mask/types");
            }
        }

        [Test]
        private static void TrainerOptionForms()
        {
            string json = "{\"vocab_size\": 200, \"max_seq_len\": 32, \"mask_token_id\": 4, \"special_token_ids\": [0,1,2,3,4], \"threads\": 1}";
            using (var a = Trainer.Create("tiny", json))
            using (var b = Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "seed", 0 }, { "learning_rate", 1e-3f },
                { "objective", "electra" }, { "bias_correction", true } })))
            {
                Step(a, 0);
                Step(b, 0);
            }
        }

        /// <summary>"dropout": false turns it off, a probability sets it; seeded masks give the
        /// same step for the same options; out of range is refused.</summary>
        [Test]
        private static void TrainerDropoutOption()
        {
            Func<object, float> loss = d =>
            {
                using (var t = Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "dropout", d } })))
                    return Step(t, 0).Loss;
            };
            float off = loss(false), p3 = loss(0.3), again = loss(0.3);
            Assert.True(p3 == again, "dropout 0.3 twice: " + p3 + " vs " + again);
            Assert.True(p3 != off, "dropout 0.3 and off give the same loss " + p3);
            Assert.Fails("dropout out of range", Status.InvalidArgument,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "dropout", 1.5 } })), "dropout");
        }

        [Test]
        private static void TrainerBadOptions()
        {
            Assert.Fails("unknown key", Status.InvalidArgument,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "learning_rat", 0.1 } })), "learning_rat");
            Assert.Fails("out of range", Status.InvalidArgument,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "mask_prob", 1.5 } })), "mask_prob");
            Assert.Fails("wrong type", Status.InvalidArgument,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "seed", "seven" } })), "options");
            Assert.Fails("malformed JSON", Status.InvalidArgument, () => Trainer.Create("tiny", "{\"vocab_size\": 200,"), "options");
            Assert.Fails("unknown preset", Status.InvalidArgument, () => Trainer.Create("huge", TinyOptions(null)), "huge");
            Assert.Fails("mask token outside the vocabulary", Status.InvalidArgument,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "mask_token_id", 5000 } })), "mask_token_id");
            Assert.Fails("resume from a missing dir", Status.Io,
                () => Trainer.Resume(Path.Combine(TempDir("resume-missing"), "nothing-here")), "nothing-here");
            Assert.Throws<ArgumentException>("NaN option", () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "learning_rate", double.NaN } })));
            Assert.Throws<ArgumentException>("unwritable option", () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "seed", new object() } })));
        }

        [Test]
        private static void TrainerBadInput()
        {
            using (var t = Trainer.Create("tiny", TinyOptions(null)))
            {
                var b = TrainBatch(0);
                var bad = (int[])b[0].Clone();
                bad[5] = TrainVocab;
                Assert.Fails("id out of range", Status.InvalidArgument, () => t.Step(bad, b[1], b[2], TrainB, TrainT));
                Assert.Throws<ArgumentException>("short ids", () => t.Step(b[0].Take(10).ToArray(), b[1], b[2], TrainB, TrainT));
                Assert.Throws<ArgumentException>("short types", () => t.Step(b[0], b[1], new int[3], TrainB, TrainT));
                Assert.Throws<ArgumentOutOfRangeException>("empty batch", () => t.Step(b[0], b[1], b[2], 0, TrainT));
                var tooLong = Enumerable.Repeat(9, 33).ToArray();
                Assert.Fails("seqLen > max_seq_len", Status.InvalidArgument, () => t.Step(tooLong, 1, 33));
                Assert.Equal(1L, Step(t, 0).Step, "nothing applied by refused steps");
                Assert.Throws<ArgumentException>("NUL in dir", () => t.Save("a\0b"));
                string file = Path.Combine(TempDir("bad-input"), "file");
                File.WriteAllText(file, "x");
                Assert.Fails("save under a file", Status.Io, () => t.Save(Path.Combine(file, "sub")));
            }
        }

        [Test]
        private static void TrainerSaveResumeExport()
        {
            string ckpt = Path.Combine(TempDir("ckpt"), "ckpt");
            string export = Path.Combine(TempDir("export"), "export");
            using (var t = Trainer.Create("tiny", TinyOptions(null)))
            {
                Step(t, 0);
                Step(t, 1);
                t.Save(ckpt);
                Assert.True(File.Exists(Path.Combine(ckpt, "trainer.safetensors")), "trainer.safetensors written");
                var a2 = Step(t, 2);
                var a3 = Step(t, 3);
                using (var r = Trainer.Resume(ckpt))
                {
                    var b2 = Step(r, 2);
                    var b3 = Step(r, 3);
                    Assert.True(SameStats(a2, b2) && SameStats(a3, b3) && b3.Step == 4,
                        string.Format("resumed run differs: {0} {1} vs {2} {3}", a2, a3, b2, b3));
                }
                using (var snap = t.GetModel())
                {
                    Assert.True(snap.Info.HasDiscriminator && snap.Info.HasGenerator && snap.Info.VocabSize == TrainVocab, snap.Info.ToString());
                    t.Export(export);
                    Step(t, 4); // changes neither the snapshot nor the export
                    var b = TrainBatch(9);
                    using (var loaded = Model.Load(export))
                    using (var s1 = snap.CreateSession())
                    using (var s2 = loaded.CreateSession())
                    {
                        AssertSameBits("export vs snapshot", s2.Discriminate(b[0], b[1], b[2], TrainB, TrainT),
                            s1.Discriminate(b[0], b[1], b[2], TrainB, TrainT));
                        AssertSameBits("export vs snapshot (generator)", s2.GeneratorLogits(b[0], b[1], b[2], TrainB, TrainT),
                            s1.GeneratorLogits(b[0], b[1], b[2], TrainB, TrainT));
                    }
                }
            }
            using (var t2 = Trainer.Create(export, TinyOptions(null)))
                Step(t2, 0);
        }

        [Test]
        private static void TrainerCancelBeforeStep()
        {
            using (var t = Trainer.Create("tiny", TinyOptions(null)))
            {
                Step(t, 0);
                t.Cancel();
                Assert.Fails("cancelled step", Status.Cancelled, () => Step(t, 1));
                Assert.Equal(2L, Step(t, 1).Step, "step after a cancelled one");
            }
        }

        [Test]
        private static void TrainerCancelFromAnotherThread()
        {
            using (var t = Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "max_seq_len", 64 } })))
            {
                const int b = 8, T = 64;
                var ids = Enumerable.Range(0, b * T).Select(i => 5 + (i * 31) % (TrainVocab - 5)).ToArray();
                long last = 0;
                bool cancelled = false;
                Exception failure = null;
                var started = new ManualResetEventSlim();
                var worker = new Thread(() =>
                {
                    try
                    {
                        for (int i = 0; i < 100000; i++)
                        {
                            StepStats s;
                            try
                            {
                                s = t.Step(ids, b, T);
                            }
                            catch (ElectraException ex)
                            {
                                if (ex.Status != Status.Cancelled) throw;
                                cancelled = true;
                                return;
                            }
                            finally
                            {
                                started.Set();
                            }
                            if (s.Step != last + 1) throw new AssertionException("step count skipped");
                            last = s.Step;
                        }
                    }
                    catch (Exception ex)
                    {
                        failure = ex;
                    }
                });
                worker.Start();
                started.Wait();
                Thread.Sleep(20);
                t.Cancel();
                Assert.True(worker.Join(60000), "the stepping thread did not stop");
                Assert.True(failure == null, "worker: " + failure);
                Assert.True(cancelled, "never cancelled");
                Assert.Equal(last + 1, t.Step(ids, b, T).Step, "step after cancel");
            }
        }

        [Test]
        private static void TrainerConcurrentSteps()
        {
            using (var t = Trainer.Create("tiny", TinyOptions(null)))
            {
                OnThreads(4, w =>
                {
                    for (int i = 0; i < 3; i++) Step(t, w + i);
                });
                Assert.Equal(13L, Step(t, 0).Step, "after 12 concurrent steps");
            }
        }

        [Test]
        private static void TrainerDisposeWhileStepping()
        {
            // The SafeHandle defers the native free until the running step returns.
            var t = Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "max_seq_len", 64 } }));
            var ids = Enumerable.Range(0, 8 * 64).Select(i => 5 + (i * 13) % (TrainVocab - 5)).ToArray();
            Exception failure = null;
            var started = new ManualResetEventSlim();
            var worker = new Thread(() =>
            {
                try
                {
                    for (int i = 0; i < 100000; i++)
                    {
                        started.Set();
                        t.Step(ids, 8, 64);
                    }
                }
                catch (ObjectDisposedException)
                {
                }
                catch (Exception ex)
                {
                    failure = ex;
                }
            });
            worker.Start();
            started.Wait();
            Thread.Sleep(10);
            t.Dispose();
            Assert.True(worker.Join(60000), "the stepping thread did not stop");
            Assert.True(failure == null, "worker: " + failure);
            Assert.True(t.IsDisposed, "IsDisposed");
        }

        // ---------------------------------------------------------------- data-parallel training

        // A sum all-reduce between threads of this process. A call publishes its array, waits
        // for every rank, sums the arrays in rank order (so every rank computes the same bits),
        // waits until no rank reads another's array any more, then writes its own.
        private sealed class RankGroup
        {
            private readonly object gate = new object();
            private readonly float[][] arrays;
            private int arrived, generation;
            private Exception fail;

            internal RankGroup(int n) { arrays = new float[n][]; }

            /// <summary>Rank 0's calls so far.</summary>
            internal int Calls { get; private set; }

            /// <summary>From now on every rank's call throws e at once (null: none).</summary>
            internal void FailWith(Exception e) { lock (gate) fail = e; }

            private void Barrier()
            {
                lock (gate)
                {
                    int gen = generation;
                    if (++arrived == arrays.Length)
                    {
                        arrived = 0;
                        generation++;
                        Monitor.PulseAll(gate);
                        return;
                    }
                    while (gen == generation)
                        Monitor.Wait(gate);
                }
            }

            internal AllReduce Rank(int r)
            {
                return data =>
                {
                    Exception f;
                    lock (gate)
                    {
                        f = fail;
                        arrays[r] = data;
                        if (r == 0) Calls++;
                    }
                    if (f != null) throw f;
                    Barrier();
                    float[][] all;
                    lock (gate) all = (float[][])arrays.Clone();
                    var sum = new float[data.Length];
                    for (int q = 0; q < all.Length; q++)
                    {
                        // Every rank sees the same lengths, so all of them fail here alike.
                        if (all[q].Length != data.Length)
                            throw new InvalidOperationException(string.Format("rank {0} reduces {1} floats, rank {2} {3}", q, all[q].Length, r, data.Length));
                        for (int i = 0; i < sum.Length; i++) sum[i] += all[q][i];
                    }
                    Barrier();
                    Array.Copy(sum, data, sum.Length);
                };
            }
        }

        private static Dictionary<string, object> DistOptions(Dictionary<string, object> extra)
        {
            var o = new Dictionary<string, object> { { "learning_rate", 2e-3 }, { "warmup_steps", 1 }, { "total_steps", 100 } };
            if (extra != null)
                foreach (var kv in extra) o[kv.Key] = kv.Value;
            return TinyOptions(o);
        }

        // Rank r's step k: rows r*half.. of the combined batch TrainBatch(k).
        private static StepStats HalfStep(Trainer t, int r, int k)
        {
            const int half = TrainB / 2;
            var b = TrainBatch(k);
            Func<int[], int[]> rows = a => a.Skip(r * half * TrainT).Take(half * TrainT).ToArray();
            return t.Step(rows(b[0]), rows(b[1]), rows(b[2]), half, TrainT);
        }

        // Runs body(r) on n threads as ranks and returns what each threw (null: nothing). A rank
        // waiting for a partner that left would block for ever, so the wait is bounded.
        private static Exception[] OnRanks(int n, Action<int> body)
        {
            var errors = new Exception[n];
            var threads = Enumerable.Range(0, n).Select(r => new Thread(() =>
            {
                try { body(r); }
                catch (Exception e) { errors[r] = e; }
            }) { IsBackground = true }).ToList();
            threads.ForEach(t => t.Start());
            foreach (var t in threads)
                Assert.True(t.Join(120000), "the ranks did not finish: one waits in the all-reduce for a partner");
            return errors;
        }

        private static void AllSucceeded(string what, Exception[] errors)
        {
            for (int r = 0; r < errors.Length; r++)
                Assert.True(errors[r] == null, string.Format("{0}, rank {1}: {2}", what, r, errors[r]));
        }

        private static bool SameExport(string a, string b)
        {
            foreach (var tower in new[] { "discriminator", "generator" })
            {
                byte[] x = File.ReadAllBytes(Path.Combine(a, tower, "model.safetensors"));
                byte[] y = File.ReadAllBytes(Path.Combine(b, tower, "model.safetensors"));
                if (!x.SequenceEqual(y)) return false;
            }
            return true;
        }

        // Two threads as ranks, each stepping its half of every batch, are one trainer with
        // accumulate_steps 2 on the whole batch: the same stats and byte-identical weights. Then a
        // collective save and a resume of both ranks with their rank continue the run exactly,
        // and an all-reduce that throws on both ranks fails the step with Status.Distributed.
        [Test]
        private static void TrainerAllReduceTwoRanks()
        {
            const int steps = 3;
            string tmp = TempDir("allreduce");
            var group = new RankGroup(2);
            var ranks = new Trainer[2];
            var resumed = new Trainer[2];
            try
            {
                for (int r = 0; r < 2; r++)
                    ranks[r] = Trainer.Create("tiny", DistOptions(new Dictionary<string, object> { { "rank", r }, { "world_size", 2 } }));
                var stats = new StepStats[2, steps];
                AllSucceeded("set", OnRanks(2, r => ranks[r].SetAllReduce(group.Rank(r))));
                // The trainer alone keeps the callback alive. (Collected from this thread only:
                // two threads waiting for the finalizers at once hung mono 6.8 now and then.)
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
                AllSucceeded("steps", OnRanks(2, r =>
                {
                    for (int k = 0; k < steps; k++) stats[r, k] = HalfStep(ranks[r], r, k);
                }));
                Assert.True(group.Calls > 0, "the all-reduce never ran");

                using (var one = Trainer.Create("tiny", DistOptions(new Dictionary<string, object> { { "accumulate_steps", 2 } })))
                {
                    string initial = Path.Combine(tmp, "initial"), want = Path.Combine(tmp, "one");
                    one.Export(initial);
                    for (int k = 0; k < steps; k++)
                    {
                        var s = Step(one, k);
                        for (int r = 0; r < 2; r++)
                            Assert.True(SameStats(s, stats[r, k]), string.Format("step {0}, rank {1}: {2}; 1 trainer x 2 micro-batches: {3}", k + 1, r, stats[r, k], s));
                    }
                    one.Export(want);
                    for (int r = 0; r < 2; r++)
                    {
                        string got = Path.Combine(tmp, "rank" + r);
                        ranks[r].Export(got);
                        Assert.True(SameExport(got, want), "rank " + r + "'s weights differ from the accumulating trainer's");
                    }
                    Assert.True(!SameExport(initial, want), "training did not change the weights");
                }

                // Save (collective: rank 0 writes), one more step; both ranks resume the
                // checkpoint with their own rank and repeat that step exactly.
                string ckpt = Path.Combine(tmp, "ckpt");
                var next = new StepStats[2];
                AllSucceeded("save, step", OnRanks(2, r =>
                {
                    ranks[r].Save(ckpt);
                    next[r] = HalfStep(ranks[r], r, steps);
                }));
                AllSucceeded("resume, step", OnRanks(2, r =>
                {
                    resumed[r] = Trainer.Resume(ckpt, new Dictionary<string, object> { { "rank", r } });
                    resumed[r].SetAllReduce(group.Rank(r));
                    var s = HalfStep(resumed[r], r, steps);
                    Assert.True(SameStats(s, next[r]), string.Format("rank {0} resumed: {1}, uninterrupted {2}", r, s, next[r]));
                }));

                // A throwing all-reduce fails the step on both ranks, the exception as the cause;
                // the ranks may then disagree, so the trainers take no further step.
                var lost = new IOException("peer lost");
                group.FailWith(lost);
                var errors = OnRanks(2, r => HalfStep(resumed[r], r, steps + 1));
                for (int r = 0; r < 2; r++)
                {
                    var e = errors[r] as ElectraException;
                    Assert.True(e != null, "rank " + r + ": " + errors[r]);
                    Assert.Equal(Status.Distributed, e.Status, "rank " + r + " status (" + e.NativeMessage + ")");
                    Assert.True(e.NativeMessage.Contains("all-reduce returned 1"), e.NativeMessage);
                    Assert.True(ReferenceEquals(e.InnerException, lost), "rank " + r + " InnerException: " + e.InnerException);
                    Assert.True(e.Message.Contains("IOException: peer lost"), e.Message);
                }
                errors = OnRanks(2, r => HalfStep(resumed[r], r, steps + 1));
                for (int r = 0; r < 2; r++)
                {
                    var e = errors[r] as ElectraException;
                    Assert.True(e != null && e.Status == Status.Distributed && e.NativeMessage.Contains("an earlier collective failed")
                        && e.InnerException == null, "rank " + r + " after a failed all-reduce: " + errors[r]);
                }
            }
            finally
            {
                foreach (var t in ranks.Concat(resumed))
                    if (t != null) t.Dispose();
            }
        }

        [Test]
        private static void TrainerAllReduceErrors()
        {
            using (var t = Trainer.Create("tiny", DistOptions(new Dictionary<string, object> { { "rank", 0 }, { "world_size", 2 } })))
            {
                var b = TrainBatch(0);
                Assert.Fails("world_size 2 without an all-reduce", Status.InvalidArgument,
                    () => t.Step(b[0], b[1], b[2], TrainB, TrainT), "electra_trainer_set_allreduce");
                Assert.Throws<ArgumentNullException>("null callback", () => t.SetAllReduce(null));
                // SetAllReduce is itself collective (the ranks compare their starting points), so
                // a callback that throws shows there already.
                var down = new InvalidOperationException("no route to rank 1");
                var e = Assert.Fails("throwing callback", Status.Distributed, () => t.SetAllReduce(data => { throw down; }),
                    "all-reduce returned 1");
                Assert.True(ReferenceEquals(e.InnerException, down), "InnerException: " + e.InnerException);
                e = Assert.Fails("callback indexing out of range", Status.Distributed, () => t.SetAllReduce(data => { data[data.Length] = 0; }));
                Assert.True(e.InnerException is IndexOutOfRangeException, "InnerException: " + e.InnerException);
                // None was set: the step still asks for one.
                Assert.Fails("after refused callbacks", Status.InvalidArgument,
                    () => t.Step(b[0], b[1], b[2], TrainB, TrainT), "electra_trainer_set_allreduce");
                Assert.Equal("distributed run failed", Library.StatusName(Status.Distributed), "status name");
                t.Dispose();
                Assert.Throws<ObjectDisposedException>("disposed trainer", () => t.SetAllReduce(data => { }));
            }
            Assert.Fails("rank outside world_size", Status.InvalidArgument,
                () => Trainer.Create("tiny", DistOptions(new Dictionary<string, object> { { "rank", 2 }, { "world_size", 2 } })), "rank");
        }

        // ---------------------------------------------------------------- devices

        // Library.DeviceCount(DeviceKind.Cuda): a count, or null after checking that it threw
        // Status.Cuda (no CUDA in the library or no driver on the machine). The default build
        // (cargo build --release --lib, no `cuda` feature) on a machine without a GPU, as where
        // these tests usually run, throws.
        private static int? CudaCount()
        {
            try
            {
                int n = Library.DeviceCount(DeviceKind.Cuda);
                Assert.True(n >= 0, "CUDA count " + n);
                return n;
            }
            catch (ElectraException e)
            {
                Assert.Equal(Status.Cuda, e.Status, "DeviceCount(Cuda) status (" + e.NativeMessage + ")");
                return null;
            }
        }

        private static bool HaveCuda() { return (CudaCount() ?? 0) > 0; }

        [Test]
        private static void TheSharedThreadPoolIsSizedOnce()
        {
            // A default session starts the shared pool (if no earlier test did); from then on
            // its size is fixed.
            using (var m = Model.Load(Fixture("emb_eq_hidden", "discriminator")))
            using (var s = m.CreateSession())
            {
                s.Discriminate(new[] { 1, 2, 3 }, null, null, 1, 3);
            }
            int n = Library.DefaultThreads();
            Assert.True(n >= 1, "shared pool size " + n);
            Library.SetDefaultThreads(n);
            Assert.Fails("resize a started pool", Status.InvalidArgument, () => Library.SetDefaultThreads(n + 1), "");
            Assert.Equal(n, Library.DefaultThreads(), "the size after a refused resize");
            try
            {
                Library.SetDefaultThreads(-1);
                throw new Exception("a negative count was accepted");
            }
            catch (ArgumentOutOfRangeException) { }
        }

        [Test]
        private static void DeviceKindsMatchTheHeader()
        {
            string header = File.ReadAllText(Path.Combine(Root, "include", "electra.h"));
            var kinds = Regex.Matches(header, @"#define ELECTRA_DEVICE_([A-Z]+) (\d+)").Cast<Match>().ToList();
            Assert.Equal(Enum.GetValues(typeof(DeviceKind)).Length, kinds.Count, "number of device kinds");
            foreach (var m in kinds)
            {
                string name = m.Groups[1].Value.Substring(0, 1) + m.Groups[1].Value.Substring(1).ToLowerInvariant();
                DeviceKind k;
                Assert.True(Enum.TryParse(name, out k), "DeviceKind lacks " + name);
                Assert.Equal(int.Parse(m.Groups[2].Value), (int)k, "DeviceKind." + name);
            }
        }

        [Test]
        private static void DeviceCount()
        {
            Assert.Equal(1, Library.DeviceCount(DeviceKind.Cpu), "CPU count");
            // Either a number or Status.Cuda; without CUDA (the default build here) it throws.
            CudaCount();
            Assert.Fails("unknown device kind", Status.InvalidArgument, () => Library.DeviceCount((DeviceKind)7), "7");
        }

        [Test]
        private static void SessionWithOptionsMatchesDefault()
        {
            foreach (var c in Cases)
            {
                var e = Load(c);
                using (var m = Model.Load(Fixture(c, "discriminator")))
                {
                    float[] want;
                    using (var s = m.CreateSession())
                        want = s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen);
                    AssertClose(c + " default session", want, e.Floats("disc_logits"));
                    var forms = new Dictionary<string, Func<Session>>
                    {
                        { "json", () => m.CreateSession("{\"device\": \"cpu\", \"threads\": 1}") },
                        { "dictionary", () => m.CreateSession(new Dictionary<string, object> { { "device", "cpu" }, { "threads", 1 } }) },
                        { "constructor", () => new Session(m, "{\"threads\": 3}") },
                        { "null json", () => m.CreateSession((string)null) },
                        { "empty object", () => new Session(m, new Dictionary<string, object>()) },
                    };
                    foreach (var f in forms)
                        using (var s = f.Value())
                            AssertSameBits(c + " " + f.Key + " vs default session", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), want);
                }
            }
        }

        [Test]
        private static void SessionDeviceErrors()
        {
            var e = Load("relu_act");
            using (var m = Model.Load(Fixture("relu_act")))
            {
                int? cuda = CudaCount();
                if ((cuda ?? 0) == 0)
                {
                    // No CUDA in this library or no GPU on this machine (the default build here).
                    Assert.Fails("device cuda:0", Status.Cuda, () => m.CreateSession("{\"device\": \"cuda:0\"}"));
                    Assert.Fails("device cuda", Status.Cuda, () => m.CreateSession(new Dictionary<string, object> { { "device", "cuda" } }));
                }
                else
                {
                    using (var s = m.CreateSession("{\"device\": \"cuda:0\"}"))
                        AssertClose("cuda:0 disc_logits", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_logits"));
                    Assert.Fails("a GPU past the last", Status.Cuda, () => m.CreateSession("{\"device\": \"cuda:" + cuda.Value + "\"}"));
                }
                Assert.Fails("device tpu", Status.InvalidArgument, () => m.CreateSession("{\"device\": \"tpu\"}"), "tpu");
                Assert.Fails("device cuda:x", Status.InvalidArgument,
                    () => m.CreateSession(new Dictionary<string, object> { { "device", "cuda:x" } }), "cuda:x");
                Assert.Fails("unknown key", Status.InvalidArgument, () => m.CreateSession("{\"devic\": \"cpu\"}"), "devic");
                Assert.Fails("negative threads", Status.InvalidArgument, () => m.CreateSession("{\"threads\": -1}"));
                Assert.Fails("malformed JSON", Status.InvalidArgument, () => m.CreateSession("{\"device\": \"cpu\","));
                Assert.Throws<ArgumentException>("NUL in options", () => m.CreateSession("{\"device\": \"cpu\0\"}"));
                Assert.Throws<ArgumentException>("unwritable option", () => m.CreateSession(new Dictionary<string, object> { { "threads", new object() } }));
                Assert.Throws<ArgumentNullException>("null model", () => new Session(null, "{}"));
                // The refusals left the model usable.
                using (var s = m.CreateSession("{\"threads\": 1}"))
                    AssertClose("after refusals", s.Discriminate(e.Ids, e.Mask, e.Types, e.Batch, e.SeqLen), e.Floats("disc_logits"));
            }
            var disposed = Model.Load(Fixture("relu_act"));
            disposed.Dispose();
            Assert.Throws<ObjectDisposedException>("disposed model", () => disposed.CreateSession("{\"device\": \"cpu\"}"));
        }

        [Test]
        private static void TrainerAndFineTunerDevice()
        {
            // An explicit CPU trains as the default does.
            using (var a = Trainer.Create("tiny", TinyOptions(null)))
            using (var b = Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "device", "cpu" } })))
            {
                StepStats sa = Step(a, 0), sb = Step(b, 0);
                Assert.True(SameStats(sa, sb), string.Format("device cpu differs from the default: {0} vs {1}", sb, sa));
            }
            string disc = Fixture("relu_act", "discriminator");
            Assert.Fails("trainer device tpu", Status.InvalidArgument,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "device", "tpu" } })), "tpu");
            Assert.Fails("fine-tuner device tpu", Status.InvalidArgument, () => FineTuner.Create(disc, 2, "{\"device\": \"tpu\"}"), "tpu");
            if (HaveCuda())
                return; // the device errors below are for libraries and machines without CUDA
            // No CUDA in this library or no GPU on this machine (the default build here).
            Assert.Fails("trainer device cuda", Status.Cuda,
                () => Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "device", "cuda" } })));
            Assert.Fails("fine-tuner device cuda:0", Status.Cuda,
                () => FineTuner.Create(disc, 2, new Dictionary<string, object> { { "device", "cuda:0" } }));
        }

        // TrainerSaveResumeExport with other options on resume: the thread count does not change
        // the numbers, so the run continues bit-identically.
        [Test]
        private static void TrainerResumeWithOptions()
        {
            string ckpt = Path.Combine(TempDir("ckpt-options"), "ckpt");
            using (var t = Trainer.Create("tiny", TinyOptions(null))) // threads 1
            {
                Step(t, 0);
                Step(t, 1);
                t.Save(ckpt);
                var a2 = Step(t, 2);
                var a3 = Step(t, 3);
                var forms = new Dictionary<string, Func<Trainer>>
                {
                    { "json", () => Trainer.Resume(ckpt, "{\"threads\": 2}") },
                    { "dictionary", () => Trainer.Resume(ckpt, new Dictionary<string, object> { { "device", "cpu" }, { "threads", 2 } }) },
                    { "null json", () => Trainer.Resume(ckpt, (string)null) },
                };
                foreach (var f in forms)
                    using (var r = f.Value())
                    {
                        var b2 = Step(r, 2);
                        var b3 = Step(r, 3);
                        Assert.True(SameStats(a2, b2) && SameStats(a3, b3) && b3.Step == 4,
                            string.Format("{0}: resumed run differs: {1} {2} vs {3} {4}", f.Key, a2, a3, b2, b3));
                    }
            }
            Assert.Fails("resume on tpu", Status.InvalidArgument, () => Trainer.Resume(ckpt, "{\"device\": \"tpu\"}"), "tpu");
            Assert.Fails("resume with a trainer-only key", Status.InvalidArgument,
                () => Trainer.Resume(ckpt, new Dictionary<string, object> { { "learning_rate", 0.1 } }), "learning_rate");
            Assert.Fails("resume from a missing dir", Status.Io,
                () => Trainer.Resume(Path.Combine(TempDir("resume-options-missing"), "nothing-here"), "{\"threads\": 2}"), "nothing-here");
            Assert.Throws<ArgumentException>("NUL in dir", () => Trainer.Resume("a\0b", "{}"));
            if (!HaveCuda())
                // No CUDA in this library or no GPU on this machine (the default build here).
                Assert.Fails("resume on cuda", Status.Cuda, () => Trainer.Resume(ckpt, "{\"device\": \"cuda\"}"));
        }

        // ---------------------------------------------------------------- tokenizers and text

        private static readonly string[] Texts =
        {
            "Call me Ishmael.",
            "Some years ago, never mind how long precisely, having little or no money in my purse",
            "café naïve",
            "",
            "白鲸记 Moby Dick 是一本书。 I ❤️ whales 🐋",
            "the whale the whale the whale the whale the whale the whale the whale the whale the whale the whale",
            "nul\0char and\ttabs",
        };

        private static string Vocab() { return Fixture("tokenizer", "vocab.txt"); }

        private static string textBare, textPair, textCls;

        // A tiny pair model over the tokenizer fixture's 3,000 ids, exported without a tokenizer
        // (textBare) and with vocab.txt beside the discriminator (textPair), and a 3-label
        // classifier fine-tuned from it with named labels and its vocab.txt (textCls).
        private static void TextModels()
        {
            if (textCls != null) return;
            string bare = Path.Combine(TempDir("text-bare"), "model"), pair = Path.Combine(TempDir("text-pair"), "model");
            using (var t = Trainer.Create("tiny", TinyOptions(new Dictionary<string, object> { { "vocab_size", 3000 } })))
            {
                t.Export(bare);
                t.Export(pair);
            }
            File.Copy(Vocab(), Path.Combine(pair, "discriminator", "vocab.txt"));
            string cls = Path.Combine(TempDir("text-cls"), "model");
            using (var f = FineTuner.Create(Path.Combine(pair, "discriminator"), 3, "{\"threads\": 1, \"seed\": 3}"))
                f.Save(cls);
            string config = Path.Combine(cls, "config.json");
            File.WriteAllText(config, File.ReadAllText(config).Replace("\"LABEL_0\"", "\"sad\"").Replace("\"LABEL_1\"", "\"neutral\"")
                .Replace("\"LABEL_2\"", "\"happy\""));
            // The fine-tuner saves the tokenizer of the model it started from with the classifier.
            if (!File.Exists(Path.Combine(cls, "vocab.txt")) || !File.Exists(Path.Combine(cls, "tokenizer.json")))
                throw new Exception("the saved classifier lacks its tokenizer");
            textBare = bare;
            textPair = pair;
            textCls = cls;
        }

        private static Session OneThread(Model m) { return m.CreateSession("{\"threads\": 1}"); }

        private static byte[] Utf8(string s) { return System.Text.Encoding.UTF8.GetBytes(s); }

        [Test]
        private static void TextStructLayoutsMatchTheHeader()
        {
            // LP64: electra_text is a pointer and a size_t; the others are 4-byte fields.
            var asm = typeof(Model).Assembly;
            var mirrors = new[]
            {
                Tuple.Create("electra_text", asm.GetType("Electra.NativeText"), 16),
                Tuple.Create("electra_text_params", asm.GetType("Electra.TextParams"), 20),
                Tuple.Create("electra_encode_params", asm.GetType("Electra.EncodeParams"), 12),
                Tuple.Create("electra_tokenizer_info", typeof(TokenizerInfo), 28),
                Tuple.Create("electra_word_score", asm.GetType("Electra.NativeWordScore"), 12),
                Tuple.Create("electra_token_score", asm.GetType("Electra.NativeTokenScore"), 8),
            };
            string header = File.ReadAllText(Path.Combine(Root, "include", "electra.h"));
            foreach (var mirror in mirrors)
            {
                Assert.True(mirror.Item2 != null, "the binding mirrors " + mirror.Item1);
                Assert.Equal(mirror.Item3, Marshal.SizeOf(mirror.Item2), "sizeof(" + mirror.Item1 + ")");
                var body = Regex.Match(header, @"typedef struct \{([^}]*)\} " + mirror.Item1 + ";");
                Assert.True(body.Success, "electra.h defines " + mirror.Item1);
                var cFields = Regex.Matches(Regex.Replace(body.Groups[1].Value, @"/\*.*?\*/", "", RegexOptions.Singleline),
                    @"\b(\w+);").Cast<Match>().Select(m => m.Groups[1].Value.Replace("_", "")).ToList();
                var csFields = mirror.Item2.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic
                    | System.Reflection.BindingFlags.Public).OrderBy(f => (int)Marshal.OffsetOf(mirror.Item2, f.Name))
                    .Select(f => f.Name.ToLowerInvariant()).ToList();
                Assert.Equal(string.Join(",", cFields), string.Join(",", csFields), mirror.Item1 + " fields");
            }
            Assert.True(Regex.IsMatch(header, @"#define ELECTRA_POOLING_MEAN 0\b") && Regex.IsMatch(header, @"#define ELECTRA_POOLING_CLS 1\b"),
                "Pooling mirrors ELECTRA_POOLING_*");
        }

        [Test]
        private static void TokenizerEncodesWithByteOffsets()
        {
            using (var tok = Tokenizer.Load(Vocab()))
            {
                var info = tok.Info;
                Assert.True(info.VocabSize == 3000 && info.PadId == 0 && info.UnkId == 1 && info.ClsId == 2 && info.SepId == 3
                    && info.MaskId == 4, info.ToString());
                // A multilingual text: every token's span is its text in the UTF-8 bytes.
                string text = "Café naïve 白鲸 I ❤️ whales 🐋!";
                byte[] bytes = Utf8(text);
                var e = tok.Encode(new[] { text, "the whale" });
                Assert.Equal(2, e.Batch, "Batch");
                Assert.True(e.SeqLen > 10 && e.Ids.Length == 2 * e.SeqLen && e.Offsets.Length == 4 * e.SeqLen, "SeqLen " + e.SeqLen);
                Assert.Equal(2, e.Ids[0], "[CLS] first");
                var spans = new List<string>();
                for (int j = 0; j < e.SeqLen && e.AttentionMask[j] == 1; j++)
                {
                    int id = e.Ids[j], start = e.Start(0, j), end = e.End(0, j);
                    if (id == info.ClsId || id == info.SepId)
                    {
                        Assert.True(start == 0 && end == 0, "special token offsets");
                        continue;
                    }
                    Assert.True(0 <= start && start < end && end <= bytes.Length, string.Format("span [{0}, {1})", start, end));
                    spans.Add(System.Text.Encoding.UTF8.GetString(bytes, start, end - start));
                }
                Assert.Equal(info.SepId, e.Ids[spans.Count + 1], "[SEP] last");
                // The pieces as HF cuts them (accents kept in the spans, stripped in the ids); ❤ is
                // [UNK], and its variation selector U+FE0F (dropped by the normalizer) in no span.
                Assert.Equal("Ca|fé|n|a|ïve|白|鲸|I|❤|whales|🐋|!", string.Join("|", spans), "spans");
                Assert.Equal(info.UnkId, e.Ids[spans.IndexOf("❤") + 1], "❤ is [UNK]");
                // Row 1 is shorter: padded with [PAD], mask 0, offsets 0.
                int n1 = e.AttentionMask.Skip(e.SeqLen).Sum();
                Assert.True(n1 == 4 && e.Ids[e.SeqLen + n1] == info.PadId && e.End(1, n1) == 0, "row 1: " + string.Join(",", e.Row(1)));
                Assert.Equal("the whale", tok.Decode(e.Row(1), true), "Decode skipping special tokens");
                Assert.True(tok.Decode(e.Row(1), false).StartsWith("[CLS] the whale [SEP]"), "Decode: " + tok.Decode(e.Row(1), false));
                Assert.True(tok.Decode(e.Row(0), true).StartsWith("cafe naive 白 鲸"), "Decode: " + tok.Decode(e.Row(0), true));
                // Bytes give the same ids as strings.
                var eb = tok.Encode(new[] { bytes, Utf8("the whale") });
                Assert.True(eb.Ids.SequenceEqual(e.Ids) && eb.Offsets.SequenceEqual(e.Offsets), "bytes vs string");
                // Pairs: types 1 on the second text, its offsets into it; truncation.
                var p = tok.EncodePairs(new[] { "the whale" }, new[] { "swam away" });
                Assert.Equal("0,0,0,0,1,1,1", string.Join(",", p.TokenTypeIds.Take(7)), "pair types");
                Assert.True(p.Start(0, 4) == 0 && p.End(0, 4) > 0, "offsets into the second text");
                var cut = tok.Encode(Texts, new EncodeOptions { MaxLength = 8 });
                Assert.True(cut.SeqLen == 8 && cut.Batch == Texts.Length && cut.Ids[15] == info.SepId && cut.AttentionMask.Skip(8).Take(8).All(x => x == 1), "MaxLength 8: " + cut.SeqLen);
                var raw = tok.Encode(new[] { "the whale" }, new EncodeOptions { AddSpecialTokens = false });
                Assert.True(raw.SeqLen == 2 && raw.Ids.All(i => i > 4), "without special tokens");
                Assert.Equal(2, tok.Encode(new[] { "" }).SeqLen, "an empty text is [CLS] [SEP]");
                // A batch too large to guess its size asks the library first.
                var big = tok.Encode(Enumerable.Repeat(string.Concat(Enumerable.Repeat("whale ", 5000)), 40).ToArray());
                Assert.True(big.SeqLen == 5002 && big.Ids.Length == 40 * 5002 && big.Ids[5001] == info.SepId, "big batch: " + big.SeqLen);
                // Lookups.
                Assert.Equal(4, tok.TokenToId("[MASK]"), "TokenToId");
                Assert.Equal(-1, tok.TokenToId("no such token"), "TokenToId of a missing entry");
                Assert.Equal("[MASK]", tok.IdToToken(4), "IdToToken");
                Assert.Fails("IdToToken out of range", Status.InvalidArgument, () => tok.IdToToken(3000));
                Assert.Fails("Decode out of range", Status.InvalidArgument, () => tok.Decode(new[] { 3000 }, false), "outside the vocabulary");
                // Bad input.
                var ex = Assert.Fails("invalid UTF-8", Status.InvalidArgument,
                    () => tok.Encode(new[] { Utf8("fine"), new byte[] { 0x66, 0x6f, 0xff, 0x6f } }), "UTF-8");
                Assert.True(ex.NativeMessage.Contains("texts[1]"), ex.NativeMessage);
                var ae = Assert.Throws<ArgumentException>("lone surrogate", () => tok.Encode(new[] { "ok", "bad \ud83d here" }));
                Assert.True(ae.Message.Contains("texts[1]") && ae.Message.Contains("surrogate"), ae.Message);
                Assert.Throws<ArgumentNullException>("null texts", () => tok.Encode((string[])null));
                Assert.Throws<ArgumentNullException>("a null text", () => tok.Encode(new string[] { "a", null }));
                Assert.Throws<ArgumentException>("pairs of two lengths", () => tok.EncodePairs(new[] { "a" }, new[] { "b", "c" }));
                Assert.Throws<ArgumentOutOfRangeException>("negative MaxLength", () => tok.Encode(new[] { "a" }, new EncodeOptions { MaxLength = -1 }));
            }
        }

        [Test]
        private static void TokenizersLoadFromFilesMemoryAndModels()
        {
            TextModels();
            byte[] json = File.ReadAllBytes(Fixture("tokenizer", "hf", "tokenizer.json"));
            using (var a = Tokenizer.Load(Vocab()))
            using (var b = Tokenizer.FromMemory(json))
            using (var c = Tokenizer.Load(Fixture("tokenizer", "hf")))
            using (var d = Tokenizer.Load(textPair))
            using (var m = Model.Load(textPair))
            using (var e = m.Tokenizer())
            {
                var want = a.Encode(Texts);
                foreach (var t in new[] { b, c, d, e })
                {
                    var got = t.Encode(Texts);
                    Assert.True(got.Ids.SequenceEqual(want.Ids) && got.Offsets.SequenceEqual(want.Offsets), "the same ids from every source");
                }
                m.Dispose();
                Assert.Equal(3000, e.Info.VocabSize, "the model's tokenizer outlives the model");
            }
            Assert.Fails("half a tokenizer.json", Status.Format, () => Tokenizer.FromMemory(json.Take(json.Length / 2).ToArray()), "JSON");
            Assert.Fails("empty tokenizer.json", Status.Format, () => Tokenizer.FromMemory(new byte[0]));
            Assert.Throws<ArgumentNullException>("null tokenizer.json", () => Tokenizer.FromMemory(null));
            Assert.Fails("missing path", Status.Io, () => Tokenizer.Load(Path.Combine(TempDir("tok-missing"), "missing")), "missing");
            Assert.Fails("not a tokenizer", Status.Format, () => Tokenizer.Load(Path.Combine(textBare, "discriminator")));
            using (var m = Model.Load(textBare))
                Assert.Fails("model without a tokenizer", Status.Unsupported, () => m.Tokenizer(), "no tokenizer");
        }

        [Test]
        private static void EmbedTextsBatchedEqualsOneAtATime()
        {
            TextModels();
            using (var m = Model.Load(textPair))
            using (var s = OneThread(m))
            {
                int h = m.Info.HiddenSize;
                foreach (var pooling in new[] { Pooling.Mean, Pooling.Cls })
                    foreach (var batchSize in new[] { 0, 1, 3 })
                    {
                        var o = new TextOptions { Pooling = pooling, BatchSize = batchSize };
                        var all = s.EmbedTexts(Texts, o);
                        Assert.Equal(Texts.Length, all.Length, "one embedding per text");
                        for (int i = 0; i < Texts.Length; i++)
                        {
                            var one = s.EmbedTexts(new[] { Texts[i] }, o)[0];
                            Assert.Equal(h, all[i].Length, "HiddenSize floats");
                            for (int j = 0; j < h; j++)
                                Assert.True(Math.Abs(all[i][j] - one[j]) <= 1e-6 * (1 + Math.Abs(one[j])),
                                    string.Format("{0} {1} batch {2} text {3}[{4}]: {5} vs {6}", pooling, batchSize, batchSize, i, j, all[i][j], one[j]));
                        }
                    }
                // [CLS] pooling is row 0 of the hidden states of the tokenizer's ids.
                using (var tok = m.Tokenizer())
                {
                    var e = tok.Encode(new[] { Texts[0] });
                    var states = s.HiddenStates(e.Ids, e.AttentionMask, e.TokenTypeIds, 1, e.SeqLen);
                    AssertSameBits("[CLS] pooling", s.EmbedTexts(new[] { Texts[0] }, new TextOptions { Pooling = Pooling.Cls })[0],
                        states.Take(h).ToArray());
                    // An explicit tokenizer is the same as the model's own.
                    AssertSameBits("explicit tokenizer", s.EmbedTexts(Texts, new TextOptions { Tokenizer = tok })[4], s.EmbedTexts(Texts)[4]);
                }
                // Cosine similarity of three sentences: normalized embeddings' dot products.
                string[] three = { "The whale swam in the sea.", "A whale was swimming in the ocean.", "Stocks fell sharply on Monday." };
                var unit = s.EmbedTexts(three, new TextOptions { Normalize = true });
                var raw = s.EmbedTexts(three);
                for (int i = 0; i < 3; i++)
                {
                    Assert.True(Math.Abs(unit[i].Sum(x => (double)x * x) - 1) < 1e-5, "unit length");
                    Assert.True(Math.Abs(Embeddings.Cosine(unit[i], unit[i]) - 1) < 1e-5, "self-similarity 1");
                    for (int j = 0; j < 3; j++)
                    {
                        float c = Embeddings.Cosine(raw[i], raw[j]);
                        double dot = unit[i].Zip(unit[j], (x, y) => (double)x * y).Sum();
                        Assert.True(c >= -1.00001 && c <= 1.00001 && Math.Abs(c - dot) < 1e-5 && c == Embeddings.Cosine(raw[j], raw[i]),
                            string.Format("cosine {0} {1}: {2} vs dot {3}", i, j, c, dot));
                    }
                }
                // Bytes as strings; bytes that are not UTF-8 are the library's InvalidArgument.
                AssertSameBits("bytes", s.EmbedTexts(Texts.Select(Utf8).ToArray())[2], s.EmbedTexts(Texts)[2]);
                Assert.Fails("invalid UTF-8", Status.InvalidArgument,
                    () => s.EmbedTexts(new[] { Utf8("fine"), new byte[] { 0x66, 0x6f, 0xff, 0x6f } }), "texts[1] is not valid UTF-8");
                Assert.Throws<ArgumentException>("lone surrogate", () => s.EmbedTexts(new[] { "\udc00" }));
                // Too long is cut, not refused; an empty text is [CLS] [SEP]; no texts is refused.
                string whale = string.Concat(Enumerable.Repeat("whale ", 5000));
                Assert.True(s.EmbedTexts(new[] { whale, "" }).All(v => v.All(Finite)), "a long text is cut");
                AssertSameBits("cut to MaxLength", s.EmbedTexts(new[] { whale }, new TextOptions { MaxLength = 8 })[0],
                    s.EmbedTexts(new[] { "whale whale whale whale whale whale" }, new TextOptions { MaxLength = 8 })[0]);
                Assert.Fails("MaxLength over the model's positions", Status.InvalidArgument,
                    () => s.EmbedTexts(new[] { "a" }, new TextOptions { MaxLength = 129 }), "max_position_embeddings 128");
                Assert.Fails("no texts", Status.InvalidArgument, () => s.EmbedTexts(new string[0]), "no texts");
                Assert.Throws<ArgumentOutOfRangeException>("negative BatchSize", () => s.EmbedTexts(new[] { "a" }, new TextOptions { BatchSize = -1 }));
            }
        }

        [Test]
        private static void ClassifyTextsWithLabelNames()
        {
            TextModels();
            using (var m = Model.Load(textCls))
            using (var s = OneThread(m))
            {
                string[] names = { "sad", "neutral", "happy" };
                Assert.True(m.Labels.SequenceEqual(names) && s.Labels.SequenceEqual(names), "Labels: " + string.Join(",", m.Labels));
                var all = s.ClassifyTexts(Texts);
                for (int i = 0; i < Texts.Length; i++)
                {
                    var c = all[i];
                    Assert.True(c.Probabilities.Length == 3 && Math.Abs(c.Probabilities.Sum() - 1) < 1e-5, "a softmax");
                    Assert.True(c.Label == names[c.LabelId] && c.Score == c.Probabilities.Max(), c.ToString());
                    var one = s.ClassifyTexts(new[] { Texts[i] })[0];
                    for (int j = 0; j < 3; j++)
                        Assert.True(Math.Abs(one.Probabilities[j] - c.Probabilities[j]) < 1e-6, "batched vs one at a time");
                }
                var pairs = s.ClassifyTextPairs(Texts, Texts.Reverse().ToArray());
                Assert.True(pairs.Length == Texts.Length && pairs.All(c => Math.Abs(c.Probabilities.Sum() - 1) < 1e-5), "pairs");
                var pb = s.ClassifyTextPairs(Texts.Select(Utf8).ToArray(), Texts.Reverse().Select(Utf8).ToArray());
                AssertSameBits("pairs as bytes", pb[1].Probabilities, pairs[1].Probabilities);
                Assert.Throws<ArgumentException>("pairs of two lengths", () => s.ClassifyTextPairs(Texts, new[] { "a" }));
                Assert.Fails("fill-mask on a classifier", Status.Unsupported, () => s.FillMask("[MASK]", 1), "generator");
                // The same classifier from memory, with the tokenizer from memory.
                byte[] config = File.ReadAllBytes(Path.Combine(textCls, "config.json"));
                byte[] weights = File.ReadAllBytes(Path.Combine(textCls, "model.safetensors"));
                using (var mm = Model.LoadFromMemory(config, weights))
                using (var sm = OneThread(mm))
                using (var tok = Tokenizer.FromMemory(File.ReadAllBytes(Fixture("tokenizer", "hf", "tokenizer.json"))))
                {
                    Assert.True(mm.Labels.SequenceEqual(names), "Labels from memory");
                    Assert.Fails("a model from memory has no tokenizer", Status.Unsupported, () => mm.Tokenizer(), "tokenizer");
                    Assert.Fails("classify without a tokenizer", Status.Unsupported, () => sm.ClassifyTexts(Texts), "tokenizer");
                    var got = sm.ClassifyTexts(Texts, new TextOptions { Tokenizer = tok });
                    for (int i = 0; i < Texts.Length; i++)
                        AssertSameBits("from memory", got[i].Probabilities, all[i].Probabilities);
                }
                Assert.Fails("truncated weights", Status.Format, () => Model.LoadFromMemory(config, weights.Take(weights.Length / 2).ToArray()));
                Assert.Fails("empty weights", Status.Format, () => Model.LoadFromMemory(config, new byte[0]));
                Assert.Fails("unknown load option", Status.InvalidArgument, () => Model.LoadFromMemory(config, weights, "{\"quantise\": \"int8\"}"), "quantise");
                Assert.Throws<ArgumentNullException>("null weights", () => Model.LoadFromMemory(config, null));
            }
            using (var m = Model.Load(textPair))
            using (var s = OneThread(m))
            {
                Assert.Equal(0, m.Labels.Length, "no labels without a classifier");
                Assert.Fails("classify without a head", Status.Unsupported, () => s.ClassifyTexts(Texts), "classification head");
            }
        }

        [Test]
        private static void DetectTextGivesWordSpans()
        {
            TextModels();
            using (var m = Model.Load(textPair))
            using (var s = OneThread(m))
            {
                string text = "Café naïve, the whale's bones";
                var words = s.DetectText(text);
                Assert.Equal("Café|naïve|,|the|whale|'|s|bones", string.Join("|", words.Select(w => w.Word)), "words");
                byte[] bytes = Utf8(text);
                foreach (var w in words)
                {
                    Assert.True(w.Score >= 0 && w.Score <= 1, w.ToString());
                    Assert.Equal(w.Word, System.Text.Encoding.UTF8.GetString(bytes, w.Start, w.End - w.Start), "the span's bytes");
                }
                Assert.Equal(6, words[1].End - words[1].Start, "naïve is 6 bytes");
                var wb = s.DetectText(bytes);
                Assert.True(wb.Select(w => w.Score).SequenceEqual(words.Select(w => w.Score)), "bytes vs string");
                Assert.Equal(0, s.DetectText("").Length, "no words in an empty text");
                // Many words, more than the model's 128 positions: only those within are scored.
                var many = s.DetectText(string.Concat(Enumerable.Repeat("a b c ", 200)));
                Assert.True(many.Length == 126, "words within 128 tokens: " + many.Length);
                Assert.Fails("invalid UTF-8", Status.InvalidArgument, () => s.DetectText(new byte[] { 0x66, 0xc3 }), "UTF-8");
            }
        }

        [Test]
        private static void FillMaskRanksTokens()
        {
            TextModels();
            using (var m = Model.Load(textPair))
            using (var s = OneThread(m))
            using (var tok = m.Tokenizer())
            {
                var r = s.FillMask("the [MASK] swam in the [MASK].", 4);
                Assert.Equal(2, r.Length, "one row per [MASK]");
                foreach (var row in r)
                {
                    Assert.Equal(4, row.Length, "topK candidates");
                    for (int j = 0; j < row.Length; j++)
                    {
                        Assert.True(row[j].Id >= 0 && row[j].Id < 3000 && row[j].Score > 0 && row[j].Score <= 1, row[j].ToString());
                        Assert.Equal(tok.IdToToken(row[j].Id), row[j].Token, "Token");
                        if (j > 0) Assert.True(row[j - 1].Score >= row[j].Score, "best first");
                    }
                }
                var again = s.FillMask(Utf8("the [MASK] swam in the [MASK]."), 4, new TextOptions { Tokenizer = tok });
                Assert.True(again[1].Select(c => c.Id).SequenceEqual(r[1].Select(c => c.Id)), "bytes and an explicit tokenizer");
                Assert.Equal(3000, s.FillMask("[MASK]", 100000)[0].Length, "topK cut to the vocabulary");
                Assert.Fails("no [MASK]", Status.InvalidArgument, () => s.FillMask("no mask here", 4), "[MASK]");
                Assert.Throws<ArgumentOutOfRangeException>("topK 0", () => s.FillMask("[MASK]", 0));
            }
        }

        [Test]
        private static void TextCallsWithoutTokenizerOrHandles()
        {
            TextModels();
            using (var m = Model.Load(textBare))
            using (var s = OneThread(m))
            using (var tok = Tokenizer.Load(Vocab()))
            {
                Assert.Fails("embed without a tokenizer", Status.Unsupported, () => s.EmbedTexts(new[] { "whale" }), "no tokenizer");
                Assert.Fails("detect without a tokenizer", Status.Unsupported, () => s.DetectText("whale"), "no tokenizer");
                Assert.Fails("fill-mask without a tokenizer", Status.Unsupported, () => s.FillMask("[MASK]"), "no tokenizer");
                var o = new TextOptions { Tokenizer = tok };
                Assert.Equal(m.Info.HiddenSize, s.EmbedTexts(new[] { "whale" }, o)[0].Length, "with a tokenizer");
                Assert.True(s.FillMask("a [MASK]", 2, o)[0].All(c => c.Token != null), "fill-mask with a tokenizer");
                // A tokenizer larger than the model's vocabulary is refused.
                using (var small = Trainer.Create("tiny", TinyOptions(null)).GetModel())
                using (var ss = OneThread(small))
                    Assert.Fails("tokenizer over the vocabulary", Status.InvalidArgument, () => ss.EmbedTexts(new[] { "whale" }, o),
                        "the tokenizer has 3000 entries but the model's vocabulary has 200");
                // Disposed handles.
                tok.Dispose();
                tok.Dispose();
                Assert.True(tok.IsDisposed, "IsDisposed");
                Assert.Throws<ObjectDisposedException>("disposed tokenizer Encode", () => tok.Encode(new[] { "a" }));
                Assert.Throws<ObjectDisposedException>("disposed tokenizer Decode", () => tok.Decode(new[] { 5 }, false));
                Assert.Throws<ObjectDisposedException>("disposed tokenizer Info", () => { var i = tok.Info; });
                Assert.Throws<ObjectDisposedException>("disposed tokenizer TokenToId", () => tok.TokenToId("a"));
                Assert.Throws<ObjectDisposedException>("disposed tokenizer in options", () => s.EmbedTexts(new[] { "a" }, o));
                s.Dispose();
                Assert.Throws<ObjectDisposedException>("disposed session EmbedTexts", () => s.EmbedTexts(new[] { "a" }));
                Assert.Throws<ObjectDisposedException>("disposed session DetectText", () => s.DetectText("a"));
                Assert.Throws<ObjectDisposedException>("disposed session FillMask", () => s.FillMask("[MASK]"));
                m.Dispose();
                Assert.Throws<ObjectDisposedException>("disposed model Tokenizer", () => m.Tokenizer());
                Assert.Throws<ObjectDisposedException>("disposed model Labels", () => { var l = m.Labels; });
            }
        }

        // Threads share a model and a tokenizer, each with its own session.
        [Test]
        private static void TextCallsOnManyThreads()
        {
            TextModels();
            using (var m = Model.Load(textPair))
            using (var tok = m.Tokenizer())
            {
                float[][] want;
                using (var s = OneThread(m))
                    want = s.EmbedTexts(Texts);
                OnThreads(4, w =>
                {
                    using (var s = OneThread(m))
                        for (int i = 0; i < 3; i++)
                        {
                            var got = s.EmbedTexts(Texts, new TextOptions { Tokenizer = tok });
                            for (int k = 0; k < Texts.Length; k++)
                                AssertSameBits("thread " + w, got[k], want[k]);
                            Assert.Equal(tok.Encode(Texts).SeqLen, tok.Encode(Texts).SeqLen, "encode");
                        }
                });
            }
        }
    }
}
