package electra_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	electra "github.com/electra-project/electra/bindings/go"
)

// A config of 1 layer over a 2-layer file is refused by LoadModel and accepted, with the
// extra layer dropped, by LoadModelWithOptions with AllowUnusedTensors.
func TestLoadModelWithOptionsUnusedTensors(t *testing.T) {
	src := fixture("emb_lt_hidden", "discriminator")
	dir := t.TempDir()
	weights, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), weights, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]interface{}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["num_hidden_layers"] = 1
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := electra.LoadModel(dir); !errors.Is(err, electra.ErrFormat) {
		t.Fatalf("LoadModel of a 1-layer config over a 2-layer file: %v, want ErrFormat", err)
	}
	if _, err := electra.LoadModelWithOptions(dir, `{"no_such_key": true}`); !errors.Is(err, electra.ErrInvalidArgument) {
		t.Fatalf("unknown option: %v, want ErrInvalidArgument", err)
	}
	m, err := electra.LoadModelWithOptions(dir, electra.LoadOptions{AllowUnusedTensors: true})
	if err != nil {
		t.Fatalf("LoadModelWithOptions(allow_unused_tensors): %v", err)
	}
	defer m.Close()
	if info, _ := m.Info(); info.NumHiddenLayers != 1 {
		t.Fatalf("NumHiddenLayers = %d, want 1", info.NumHiddenLayers)
	}
}

// Quantize "int8" loads an int8 model: Info says so, its logits are within ~1% of the f32 ones
// (and not equal to them), Save writes the int8 format that loads back as int8, and fine-tuning
// refuses it with ErrUnsupported.
func TestLoadModelQuantizedInt8(t *testing.T) {
	e := loadExpected(t, "emb_lt_hidden")
	m, err := electra.LoadModelWithOptions(fixture("emb_lt_hidden", "discriminator"), electra.LoadOptions{Quantize: "int8"})
	if err != nil {
		t.Fatalf("LoadModelWithOptions(quantize int8): %v", err)
	}
	defer m.Close()
	if info, _ := m.Info(); !info.Int8 {
		t.Fatalf("Info().Int8 = false after quantize int8")
	}
	f32 := mustLoad(t, fixture("emb_lt_hidden", "discriminator"))
	if info, _ := f32.Info(); info.Int8 {
		t.Fatalf("an f32 model says Int8")
	}
	q, err := mustSession(t, m).Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	want, err := mustSession(t, f32).Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	var worst, top float64
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(q[i]-want[i])))
		top = math.Max(top, math.Abs(float64(want[i])))
	}
	if worst == 0 || worst > 0.05*top {
		t.Fatalf("int8 vs f32 logits: max |diff| %g of max %g", worst, top)
	}
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatalf("Save int8: %v", err)
	}
	back := mustLoad(t, dir)
	if info, _ := back.Info(); !info.Int8 {
		t.Fatalf("a saved int8 model loads as f32")
	}
	if _, err := electra.NewFineTuner(dir, 2, nil); !errors.Is(err, electra.ErrUnsupported) {
		t.Fatalf("fine-tuning an int8 model: %v, want ErrUnsupported", err)
	}
}
