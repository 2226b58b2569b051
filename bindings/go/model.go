package electra

// #include "electra.h"
import "C"

import (
	"runtime"
	"sync"
)

// ModelInfo describes a model's dimensions (electra_model_info).
type ModelInfo struct {
	VocabSize             int  // V
	HiddenSize            int  // the discriminator's hidden width (the generator's without one)
	EmbeddingSize         int  // E
	MaxPositionEmbeddings int  // largest seqLen accepted
	TypeVocabSize         int  // number of token types accepted
	NumHiddenLayers       int  // encoder layers of the discriminator (else the generator)
	HasDiscriminator      bool // Discriminate and HiddenStates need it
	HasGenerator          bool // GeneratorLogits needs it
	GeneratorHiddenSize   int  // 0 without a generator
	NumParameters         uint64
	NumLabels             int  // labels of the classification head (0 without one)
	Int8                  bool // the Linear weights are int8 (inference only; see LoadOptions.Quantize)
}

// Model is loaded, immutable weights. It is safe for concurrent use: share one Model between
// goroutines, each with its own Session. Sessions keep the weights alive, so a Model may be
// closed while its sessions are still in use.
type Model struct {
	mu   sync.RWMutex // read-held by calls, write-held by Close
	ptr  *C.electra_model
	info ModelInfo
}

func wrapModel(p *C.electra_model) (*Model, error) {
	info, err := nativeModelInfo(p)
	if err != nil {
		nativeModelFree(p)
		return nil, err
	}
	m := &Model{ptr: p, info: info}
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// LoadModel loads a HuggingFace ELECTRA directory (config.json + model.safetensors of an
// ElectraForPreTraining or ElectraForMaskedLM), or a pair layout (path/discriminator,
// path/generator).
func LoadModel(path string) (*Model, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	p, err := nativeModelLoad(path)
	if err != nil {
		return nil, err
	}
	return wrapModel(p)
}

// LoadOptions are the options of LoadModelWithOptions.
type LoadOptions struct {
	// AllowUnusedTensors accepts files holding tensors the config does not account for (by
	// default ErrFormat listing them, e.g. a config of 1 layer over a 2-layer file).
	AllowUnusedTensors bool `json:"allow_unused_tensors"`
	// Quantize is "" or "f32" (the weights as stored) or "int8": quantize an f32 model's
	// Linear and word-embedding weights to int8 as it loads (as `electra quantize` does; faster
	// inference within ~1% of f32; training refuses such a model with ErrUnsupported).
	Quantize string `json:"quantize,omitempty"`
}

// LoadModelWithOptions loads a model as LoadModel does, with options: nil (the defaults, as
// LoadModel), a LoadOptions, a JSON object as a string, []byte or json.RawMessage, or any value
// encoding/json turns into an object. Keys: allow_unused_tensors (bool, default false),
// quantize ("f32" or "int8", default "f32"). Unknown keys are ErrInvalidArgument.
func LoadModelWithOptions(path string, options interface{}) (*Model, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	opts, err := optionsString(options)
	if err != nil {
		return nil, err
	}
	p, err := nativeModelLoadWithOptions(path, opts)
	if err != nil {
		return nil, err
	}
	return wrapModel(p)
}

// LoadModelFromMemory loads a model from the bytes of its config.json and model.safetensors
// (an ElectraForPreTraining, ElectraForMaskedLM or fine-tuned classifier), checked as files
// are: an empty, truncated or corrupt buffer is ErrFormat. The weights are copied: both slices
// may be reused when it returns. options are those of LoadModelWithOptions (nil or "": none).
// Such a model has no tokenizer: pass one in TextOptions.Tokenizer.
func LoadModelFromMemory(config, weights []byte, options interface{}) (*Model, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	if s, ok := options.(string); ok && s == "" {
		options = nil
	}
	opts, err := optionsString(options)
	if err != nil {
		return nil, err
	}
	p, err := nativeModelLoadFromMemory(config, weights, opts)
	runtime.KeepAlive(config)
	runtime.KeepAlive(weights)
	if err != nil {
		return nil, err
	}
	return wrapModel(p)
}

// Tokenizer returns the tokenizer saved beside the model's weights (tokenizer.json or
// vocab.txt beside config.json, in the pair layout discriminator/'s or generator/'s), shared
// with the model: close it when done. A model without one (or loaded from memory) is
// ErrUnsupported, as is one whose tokenizer could not be read (the message says why).
func (m *Model) Tokenizer() (*Tokenizer, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return nil, closedError("model")
	}
	p, err := nativeModelTokenizer(m.ptr)
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	return wrapTokenizer(p)
}

// Labels returns a classifier's label names in id order (config.json's id2label; LABEL_<i>
// where it has none). A model without a classification head is ErrUnsupported.
func (m *Model) Labels() ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return nil, closedError("model")
	}
	return m.labelsLocked()
}

func (m *Model) labelsLocked() ([]string, error) {
	n := m.info.NumLabels
	if n == 0 {
		// The library's own error for a model without a classifier.
		_, err := nativeModelLabelName(m.ptr, 0)
		if err == nil {
			err = newError(StatusUnsupported, "unsupported: the model has no classification head")
		}
		return nil, err
	}
	labels := make([]string, n)
	for i := range labels {
		name, err := nativeModelLabelName(m.ptr, i)
		if err != nil {
			return nil, err
		}
		labels[i] = name
	}
	runtime.KeepAlive(m)
	return labels, nil
}

// Info returns the model's dimensions.
func (m *Model) Info() (ModelInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return ModelInfo{}, closedError("model")
	}
	return m.info, nil
}

// Save writes the model in the pair layout under dir (dir/discriminator, dir/generator),
// each a HuggingFace directory.
func (m *Model) Save(dir string) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return closedError("model")
	}
	err := nativeModelSave(m.ptr, dir)
	runtime.KeepAlive(m)
	return err
}

// Close frees the model. It is idempotent; sessions made from the model stay usable.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr != nil {
		nativeModelFree(m.ptr)
		m.ptr = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}
