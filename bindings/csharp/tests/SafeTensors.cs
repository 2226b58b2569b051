// Reads safetensors files (8-byte little-endian header length, JSON header, raw data) for the
// parity fixtures, with a minimal JSON parser for the header.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace Electra.Tests
{
    internal sealed class Tensor
    {
        public string Dtype;
        public int[] Shape;
        public byte[] Raw;

        public int Numel
        {
            get
            {
                int n = 1;
                foreach (int d in Shape) n *= d;
                return n;
            }
        }

        public int[] Ints()
        {
            if (Dtype != "I32" || Raw.Length != 4 * Numel)
                throw new InvalidDataException("want an I32 tensor, got " + Dtype);
            var v = new int[Numel];
            for (int i = 0; i < v.Length; i++) v[i] = BitConverter.ToInt32(Raw, 4 * i);
            return v;
        }

        public float[] Floats()
        {
            if (Dtype != "F32" || Raw.Length != 4 * Numel)
                throw new InvalidDataException("want an F32 tensor, got " + Dtype);
            var v = new float[Numel];
            for (int i = 0; i < v.Length; i++) v[i] = BitConverter.ToSingle(Raw, 4 * i);
            return v;
        }
    }

    internal static class SafeTensors
    {
        public static Dictionary<string, Tensor> Read(string path)
        {
            if (!BitConverter.IsLittleEndian)
                throw new PlatformNotSupportedException("big-endian host");
            byte[] b = File.ReadAllBytes(path);
            if (b.Length < 8) throw new InvalidDataException(path + ": truncated");
            ulong n = BitConverter.ToUInt64(b, 0);
            if (n > (ulong)(b.Length - 8)) throw new InvalidDataException(path + ": bad header length");
            var header = (Dictionary<string, object>)MiniJson.Parse(Encoding.UTF8.GetString(b, 8, (int)n));
            int dataStart = 8 + (int)n;
            var result = new Dictionary<string, Tensor>();
            foreach (var kv in header)
            {
                if (kv.Key == "__metadata__") continue;
                var e = (Dictionary<string, object>)kv.Value;
                var shape = (List<object>)e["shape"];
                var offs = (List<object>)e["data_offsets"];
                long lo = Convert.ToInt64(offs[0]), hi = Convert.ToInt64(offs[1]);
                if (lo < 0 || hi < lo || dataStart + hi > b.Length)
                    throw new InvalidDataException(path + ": " + kv.Key + ": bad offsets");
                var t = new Tensor { Dtype = (string)e["dtype"], Shape = new int[shape.Count], Raw = new byte[hi - lo] };
                for (int i = 0; i < shape.Count; i++) t.Shape[i] = Convert.ToInt32(shape[i]);
                Array.Copy(b, dataStart + lo, t.Raw, 0, hi - lo);
                result[kv.Key] = t;
            }
            return result;
        }
    }

    /// <summary>Parses JSON into Dictionary&lt;string, object&gt;, List&lt;object&gt;, string,
    /// double, bool and null.</summary>
    internal sealed class MiniJson
    {
        private readonly string s;
        private int i;

        private MiniJson(string s) { this.s = s; }

        public static object Parse(string text)
        {
            var p = new MiniJson(text);
            object v = p.Value();
            p.Ws();
            if (p.i != text.Length) throw p.Error("trailing characters");
            return v;
        }

        private Exception Error(string what) { return new FormatException("JSON: " + what + " at " + i); }

        private void Ws() { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }

        private void Expect(char c)
        {
            Ws();
            if (i >= s.Length || s[i] != c) throw Error("expected '" + c + "'");
            i++;
        }

        private object Value()
        {
            Ws();
            if (i >= s.Length) throw Error("unexpected end");
            char c = s[i];
            if (c == '{')
            {
                i++;
                var d = new Dictionary<string, object>();
                Ws();
                if (s[i] == '}') { i++; return d; }
                while (true)
                {
                    Ws();
                    string k = Str();
                    Expect(':');
                    d[k] = Value();
                    Ws();
                    if (s[i] == ',') { i++; continue; }
                    Expect('}');
                    return d;
                }
            }
            if (c == '[')
            {
                i++;
                var l = new List<object>();
                Ws();
                if (s[i] == ']') { i++; return l; }
                while (true)
                {
                    l.Add(Value());
                    Ws();
                    if (s[i] == ',') { i++; continue; }
                    Expect(']');
                    return l;
                }
            }
            if (c == '"') return Str();
            if (s.Substring(i).StartsWith("true")) { i += 4; return true; }
            if (s.Substring(i).StartsWith("false")) { i += 5; return false; }
            if (s.Substring(i).StartsWith("null")) { i += 4; return null; }
            int start = i;
            while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
            if (start == i) throw Error("unexpected character");
            return double.Parse(s.Substring(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        private string Str()
        {
            if (s[i] != '"') throw Error("expected a string");
            i++;
            var sb = new StringBuilder();
            while (true)
            {
                if (i >= s.Length) throw Error("unterminated string");
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                char e = s[i++];
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'u': sb.Append((char)Convert.ToInt32(s.Substring(i, 4), 16)); i += 4; break;
                    default: sb.Append(e); break;
                }
            }
        }
    }
}
