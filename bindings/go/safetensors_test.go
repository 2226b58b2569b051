package electra_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// fixturesDir is tests/fixtures of the repository (go test runs in bindings/go).
var fixturesDir = filepath.Join("..", "..", "tests", "fixtures")

// cases are the parity cases written by scripts/make_fixtures.py.
var cases = []string{"emb_lt_hidden", "emb_eq_hidden", "gelu_new_act", "relu_act"}

func fixture(parts ...string) string {
	return filepath.Join(append([]string{fixturesDir}, parts...)...)
}

// tensor is one entry of a safetensors file.
type tensor struct {
	dtype string
	shape []int
	raw   []byte
}

// readSafetensors parses the format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then raw data.
func readSafetensors(path string) (map[string]tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("%s: truncated", path)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%s: header length %d exceeds the file", path, n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("%s: header: %v", path, err)
	}
	data := b[8+n:]
	out := map[string]tensor{}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype       string `json:"dtype"`
			Shape       []int  `json:"shape"`
			DataOffsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, name, err)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > len(data) {
			return nil, fmt.Errorf("%s: %s: bad offsets %v", path, name, e.DataOffsets)
		}
		out[name] = tensor{dtype: e.Dtype, shape: e.Shape, raw: data[lo:hi]}
	}
	return out, nil
}

func (t tensor) numel() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

func (t tensor) ints(tb testing.TB) []int32 {
	tb.Helper()
	if t.dtype != "I32" || len(t.raw) != 4*t.numel() {
		tb.Fatalf("want an I32 tensor, got %s %v (%d bytes)", t.dtype, t.shape, len(t.raw))
	}
	v := make([]int32, t.numel())
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(t.raw[4*i:]))
	}
	return v
}

func (t tensor) floats(tb testing.TB) []float32 {
	tb.Helper()
	if t.dtype != "F32" || len(t.raw) != 4*t.numel() {
		tb.Fatalf("want an F32 tensor, got %s %v (%d bytes)", t.dtype, t.shape, len(t.raw))
	}
	v := make([]float32, t.numel())
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.raw[4*i:]))
	}
	return v
}

// expected is a case's expected.safetensors: inputs and PyTorch's outputs.
type expected struct {
	ids, mask, types []int32
	batch, seqLen    int
	f                map[string]tensor
}

func loadExpected(tb testing.TB, c string) expected {
	tb.Helper()
	f, err := readSafetensors(fixture(c, "expected.safetensors"))
	if err != nil {
		tb.Fatal(err)
	}
	ids := f["input_ids"]
	if len(ids.shape) != 2 {
		tb.Fatalf("%s: input_ids shape %v", c, ids.shape)
	}
	return expected{
		ids: ids.ints(tb), mask: f["attention_mask"].ints(tb), types: f["token_type_ids"].ints(tb),
		batch: ids.shape[0], seqLen: ids.shape[1], f: f,
	}
}

func (e expected) floats(tb testing.TB, name string) []float32 {
	tb.Helper()
	t, ok := e.f[name]
	if !ok {
		tb.Fatalf("expected.safetensors lacks %s", name)
	}
	return t.floats(tb)
}

// assertClose checks |got-want| <= floor*max|want| + rtol*|want| elementwise, as the Rust
// parity tests do (rtol 1e-5, floor 1e-6).
func assertClose(tb testing.TB, what string, got, want []float32) {
	tb.Helper()
	const rtol, floor = 1e-5, 1e-6
	if len(got) != len(want) {
		tb.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	atol := floor * scale
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if !(math.Abs(g-w) <= atol+rtol*math.Abs(w)) {
			tb.Fatalf("%s: element %d: got %g want %g (|diff| %.3g)", what, i, g, w, math.Abs(g-w))
		}
	}
}

func assertSameBits(tb testing.TB, what string, got, want []float32) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			tb.Fatalf("%s: element %d: got %g want %g (bitwise)", what, i, got[i], want[i])
		}
	}
}
