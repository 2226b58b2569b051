package electra_test

import (
	"encoding/json"
	"errors"
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
