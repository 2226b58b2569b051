package electra

// #include "electra.h"
import "C"

import (
	"runtime"
	"sync"
)

// StepStats is what one training step measured (electra_step_stats).
type StepStats struct {
	Step         uint64  // updates applied so far, this one included
	Loss         float32 // gen_weight*MLMLoss + disc_weight*DiscLoss
	MLMLoss      float32 // generator cross-entropy at the masked positions
	DiscLoss     float32 // discriminator BCE over real tokens (0 for the mlm objective)
	DiscAccuracy float32 // share of real tokens the discriminator labels correctly
	LearningRate float32 // learning rate this step used
	GradNorm     float32 // global gradient norm before clipping
}

// Trainer is ELECTRA pre-training state: weights, optimizer moments, step count and RNG.
// Step, Save, Export and Model are serialised by a mutex; Cancel may be called from any
// goroutine at any time.
type Trainer struct {
	op   sync.Mutex   // held by Step, Save, Export, Model and Close
	life sync.RWMutex // read-held by Cancel, write-held by Close
	ptr  *C.electra_trainer
}

func wrapTrainer(p *C.electra_trainer) *Trainer {
	t := &Trainer{ptr: p}
	runtime.SetFinalizer(t, (*Trainer).Close)
	return t
}

// NewTrainer creates a trainer. init is a preset ("tiny", "small", "base", "large") or a
// model directory. options is nil (defaults), a JSON object as a string, []byte or
// json.RawMessage, or any value encoding/json turns into an object (map[string]any, a
// struct). Unknown keys and bad values are ErrInvalidArgument with a message naming the key.
// The "device" key ("cpu", the default; "cuda" or "cuda:N") picks where training runs; a
// device not compiled in or not present is ErrCUDA. "max_memory_bytes" is a memory budget (0,
// the default: none beyond the machine's memory): creation or a step whose estimate exceeds it
// is ErrOutOfMemory before anything is allocated.
func NewTrainer(init string, options interface{}) (*Trainer, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	opts, err := optionsString(options)
	if err != nil {
		return nil, err
	}
	p, err := nativeTrainerNew(init, opts)
	if err != nil {
		return nil, err
	}
	return wrapTrainer(p), nil
}

// ResumeTrainer restores a trainer saved by Save, on the device and thread count it was
// created with; training continues bit-identically.
func ResumeTrainer(dir string) (*Trainer, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	p, err := nativeTrainerResume(dir)
	if err != nil {
		return nil, err
	}
	return wrapTrainer(p), nil
}

// ResumeTrainerWithOptions is ResumeTrainer elsewhere: options (nil, a SessionOptions, or any
// form NewTrainer accepts) may set device ("cpu", "cuda", "cuda:N") and threads; an absent key
// keeps the checkpoint's value. A run begun on a GPU continues on a machine without one with
// SessionOptions{Device: "cpu"}.
func ResumeTrainerWithOptions(dir string, options interface{}) (*Trainer, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	opts, err := optionsString(options)
	if err != nil {
		return nil, err
	}
	p, err := nativeTrainerResumeWithOptions(dir, opts)
	if err != nil {
		return nil, err
	}
	return wrapTrainer(p), nil
}

// Step runs one pre-training step on batch*seqLen token ids (mask and types may be nil).
// Bad input, ErrNumeric and ErrCancelled leave the trainer as it was and usable.
func (t *Trainer) Step(ids, mask, types []int32, batch, seqLen int) (StepStats, error) {
	if _, err := checkInputs(ids, mask, types, batch, seqLen); err != nil {
		return StepStats{}, err
	}
	t.op.Lock()
	defer t.op.Unlock()
	if t.ptr == nil {
		return StepStats{}, closedError("trainer")
	}
	st, err := nativeTrainerStep(t.ptr, ids, mask, types, batch, seqLen)
	runtime.KeepAlive(t)
	runtime.KeepAlive(ids)
	runtime.KeepAlive(mask)
	runtime.KeepAlive(types)
	return st, err
}

func (t *Trainer) dirOp(export bool, dir string) error {
	t.op.Lock()
	defer t.op.Unlock()
	if t.ptr == nil {
		return closedError("trainer")
	}
	err := nativeTrainerDirOp(export, t.ptr, dir)
	runtime.KeepAlive(t)
	return err
}

// Save writes the full training state to dir/trainer.safetensors, atomically.
func (t *Trainer) Save(dir string) error { return t.dirOp(false, dir) }

// Export writes the model in the pair layout (dir/discriminator, dir/generator), loadable by
// LoadModel and by HuggingFace transformers.
func (t *Trainer) Export(dir string) error { return t.dirOp(true, dir) }

// Model returns a snapshot of the current weights for inference; later steps do not change
// it. Close it when done.
func (t *Trainer) Model() (*Model, error) {
	t.op.Lock()
	defer t.op.Unlock()
	if t.ptr == nil {
		return nil, closedError("trainer")
	}
	p, err := nativeTrainerGetModel(t.ptr)
	runtime.KeepAlive(t)
	if err != nil {
		return nil, err
	}
	return wrapModel(p)
}

// Cancel asks the running step, or the next one if none is running, to stop with
// ErrCancelled. Safe from any goroutine; a no-op on a closed trainer.
func (t *Trainer) Cancel() {
	t.life.RLock()
	defer t.life.RUnlock()
	if t.ptr != nil {
		nativeTrainerCancel(t.ptr)
	}
	runtime.KeepAlive(t)
}

// Close frees the trainer, waiting for a running call to finish. It is idempotent.
func (t *Trainer) Close() error {
	t.op.Lock()
	defer t.op.Unlock()
	t.life.Lock()
	defer t.life.Unlock()
	if t.ptr != nil {
		nativeTrainerFree(t.ptr)
		t.ptr = nil
		runtime.SetFinalizer(t, nil)
	}
	return nil
}
