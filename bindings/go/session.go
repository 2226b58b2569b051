package electra

// #include "electra.h"
import "C"

import (
	"runtime"
	"sync"
)

// Session is inference scratch space over a Model. Calls on one Session are serialised by a
// mutex; for parallelism give each goroutine its own Session over the shared Model.
//
// Inputs: ids holds batch*seqLen token ids, row-major. mask (1 = token, 0 = padding) and
// types (token type ids) may be nil, meaning all ones and all zeros; otherwise they hold
// batch*seqLen values too. The slices are passed to the library without copying.
type Session struct {
	mu     sync.Mutex
	ptr    *C.electra_session
	info   ModelInfo
	labels []string   // the classifier's label names (nil without one)
	tok    *Tokenizer // the model's tokenizer (nil without one): FillMask's token strings
}

const (
	runDiscriminate = iota
	runGeneratorLogits
	runHiddenStates
	runClassify
)

// NewSession creates a session over m on the CPU, one worker thread per core.
func NewSession(m *Model) (*Session, error) {
	return newSession(m, nil, false)
}

// NewSessionWithOptions creates a session over m with options: nil (the defaults, as
// NewSession), a SessionOptions, a JSON object as a string, []byte or json.RawMessage, or any
// value encoding/json turns into an object (map[string]any, a struct). Keys: device ("cpu",
// the default; "cuda" or "cuda:N"), threads (host worker threads: 0, the default, the shared
// pool of SetDefaultThreads; 1 the calling thread only; N a pool of N), own_pool (a pool of the
// session's own) and max_memory_bytes (a memory budget, 0 = none beyond the machine's memory: a call
// over it is ErrOutOfMemory before anything is allocated). A device that is not compiled in
// or not present is ErrCUDA with a message saying which; unknown keys and bad values are
// ErrInvalidArgument.
func NewSessionWithOptions(m *Model, options interface{}) (*Session, error) {
	opts, err := optionsString(options)
	if err != nil {
		return nil, err
	}
	return newSession(m, opts, true)
}

func newSession(m *Model, opts *string, withOptions bool) (*Session, error) {
	if m == nil {
		return nil, newError(StatusInvalidHandle, "invalid handle: the model is nil")
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return nil, closedError("model")
	}
	var p *C.electra_session
	var err error
	if withOptions {
		p, err = nativeSessionNewWithOptions(m.ptr, opts)
	} else {
		p, err = nativeSessionNew(m.ptr)
	}
	if err != nil {
		runtime.KeepAlive(m)
		return nil, err
	}
	s := &Session{ptr: p, info: m.info}
	if m.info.NumLabels > 0 {
		if s.labels, err = m.labelsLocked(); err != nil {
			nativeSessionFree(p)
			return nil, err
		}
	}
	if t, err := nativeModelTokenizer(m.ptr); err == nil {
		// Shared with the model; a model without one leaves the text calls to say so.
		if s.tok, err = wrapTokenizer(t); err != nil {
			nativeSessionFree(p)
			return nil, err
		}
	}
	runtime.KeepAlive(m)
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

// Info returns the dimensions of the session's model.
func (s *Session) Info() ModelInfo { return s.info }

// outputSize is the number of floats a call writes for n = batch*seqLen tokens.
func (s *Session) outputSize(kind, batch, n int) (int, error) {
	switch kind {
	case runGeneratorLogits:
		return n * s.info.VocabSize, nil
	case runHiddenStates:
		return n * s.info.HiddenSize, nil
	case runClassify:
		if s.info.NumLabels == 0 {
			return 0, newError(StatusUnsupported, "unsupported: the model has no classification head (num_labels = 0)")
		}
		return batch * s.info.NumLabels, nil
	}
	return n, nil
}

func (s *Session) run(kind int, dst []float32, ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	n, err := checkInputs(ids, mask, types, batch, seqLen)
	if err != nil {
		return nil, err
	}
	need, err := s.outputSize(kind, batch, n)
	if err != nil {
		return nil, err
	}
	if dst == nil {
		dst = make([]float32, need)
	} else if len(dst) < need {
		return nil, newError(StatusBufferTooSmall, "buffer too small: need %d elements, got %d", need, len(dst))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr == nil {
		return nil, closedError("session")
	}
	err = nativeSessionRun(kind, s.ptr, ids, mask, types, batch, seqLen, dst)
	runtime.KeepAlive(s)
	runtime.KeepAlive(ids)
	runtime.KeepAlive(mask)
	runtime.KeepAlive(types)
	if err != nil {
		return nil, err
	}
	return dst[:need], nil
}

// Discriminate returns batch*seqLen replaced-token-detection logits (> 0 means "replaced").
func (s *Session) Discriminate(ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	return s.run(runDiscriminate, nil, ids, mask, types, batch, seqLen)
}

// GeneratorLogits returns batch*seqLen*VocabSize masked-LM logits, row-major. A model without
// a generator gives ErrUnsupported.
func (s *Session) GeneratorLogits(ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	return s.run(runGeneratorLogits, nil, ids, mask, types, batch, seqLen)
}

// HiddenStates returns the last hidden states, batch*seqLen*HiddenSize floats, row-major.
func (s *Session) HiddenStates(ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	return s.run(runHiddenStates, nil, ids, mask, types, batch, seqLen)
}

// DiscriminateInto is Discriminate writing into dst (at least batch*seqLen floats) and
// returning dst[:batch*seqLen]; nothing is written on error.
func (s *Session) DiscriminateInto(dst []float32, ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	if dst == nil {
		dst = []float32{}
	}
	return s.run(runDiscriminate, dst, ids, mask, types, batch, seqLen)
}

// GeneratorLogitsInto is GeneratorLogits writing into dst.
func (s *Session) GeneratorLogitsInto(dst []float32, ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	if dst == nil {
		dst = []float32{}
	}
	return s.run(runGeneratorLogits, dst, ids, mask, types, batch, seqLen)
}

// HiddenStatesInto is HiddenStates writing into dst.
func (s *Session) HiddenStatesInto(dst []float32, ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	if dst == nil {
		dst = []float32{}
	}
	return s.run(runHiddenStates, dst, ids, mask, types, batch, seqLen)
}

// Classify returns batch*NumLabels classification logits, row-major, for a model with a
// classification head (NumLabels > 0; else ErrUnsupported).
func (s *Session) Classify(ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	return s.run(runClassify, nil, ids, mask, types, batch, seqLen)
}

// ClassifyInto is Classify writing into dst.
func (s *Session) ClassifyInto(dst []float32, ids, mask, types []int32, batch, seqLen int) ([]float32, error) {
	if dst == nil {
		dst = []float32{}
	}
	return s.run(runClassify, dst, ids, mask, types, batch, seqLen)
}

// Close frees the session. It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr != nil {
		nativeSessionFree(s.ptr)
		s.ptr = nil
		runtime.SetFinalizer(s, nil)
		if s.tok != nil {
			s.tok.Close()
		}
	}
	return nil
}
