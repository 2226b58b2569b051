package electra

// #include "electra.h"
import "C"

import (
	"errors"
	"runtime"
	"runtime/cgo"
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
	op   sync.Mutex   // held by Step, Save, Export, Model, SetAllReduce and Close
	life sync.RWMutex // read-held by Cancel, write-held by Close
	ptr  *C.electra_trainer
	// The all-reduce the library calls back, and the handle it was given as user_data: alive
	// until Close or the next SetAllReduce.
	reduce       *allReduceState
	reduceHandle cgo.Handle
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

// ResumeOptions is a typed options value for ResumeTrainerWithOptions (a map or JSON text with
// the same keys works as well). Zero fields are left out: the checkpoint's values, rank 0.
type ResumeOptions struct {
	// Device is "cpu", "cuda" (the first GPU) or "cuda:N".
	Device string `json:"device,omitempty"`
	// Threads is the number of host worker threads (0: the checkpoint's).
	Threads int `json:"threads,omitempty"`
	// Rank is this process's rank in a data-parallel run (see SetAllReduce): every rank
	// resumes the same checkpoint, takes its own RNG and cursor state from it, then calls
	// SetAllReduce again.
	Rank int `json:"rank,omitempty"`
}

// ResumeTrainerWithOptions is ResumeTrainer elsewhere: options (nil, a ResumeOptions, a
// SessionOptions, or any form NewTrainer accepts) may set device ("cpu", "cuda", "cuda:N"),
// threads and rank; an absent key keeps the checkpoint's value. A run begun on a GPU
// continues on a machine without one with ResumeOptions{Device: "cpu"}.
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
	err = t.withCause(err)
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
	err := t.withCause(nativeTrainerDirOp(export, t.ptr, dir))
	runtime.KeepAlive(t)
	return err
}

// SetAllReduce makes this trainer one rank of a data-parallel run whose gradients f sums
// across ranks (over MPI, Gloo, NCCL through host memory, or goroutines of this process). The
// trainer must have been created with the options "rank" (0..world_size-1, distinct per rank)
// and "world_size"; with "accumulate_steps" k each rank also splits its batch into k
// micro-batches. N ranks of B rows give the step of one trainer with accumulate_steps N on
// the N·B rows, bit for bit.
//
// The contract is collective: every rank calls SetAllReduce, before its first step or right
// after resuming (it checks that the ranks start from the same weights, options and step;
// ErrDistributed otherwise), and from then on calls Step and Save in the same order as the
// others (each Step on its own batch; Save is written by rank 0 into the directory rank 0
// names). f runs on the goroutine that called Step, Save or SetAllReduce, several times per
// call, with buffers of any length; a failure on one rank fails the step on every rank and
// changes nothing. An error returned by f, or a panic in f (recovered, never crossing into C),
// fails the call with ErrDistributed, the error's text appended to the message; the trainer
// then takes no more steps (the ranks may disagree: resume from a checkpoint). A nil f is
// ErrNullPointer. A second call replaces f; the trainer holds f until Close.
func (t *Trainer) SetAllReduce(f AllReduce) error {
	t.op.Lock()
	defer t.op.Unlock()
	if t.ptr == nil {
		return closedError("trainer")
	}
	if f == nil {
		err := nativeTrainerSetAllReduce(t.ptr, false, 0)
		runtime.KeepAlive(t)
		return err
	}
	s := &allReduceState{f: f}
	h := cgo.NewHandle(s)
	err := nativeTrainerSetAllReduce(t.ptr, true, uintptr(h))
	runtime.KeepAlive(t)
	if err != nil {
		// The library keeps the previous all-reduce, if any, and has dropped this one.
		if c := s.takeCause(); c != nil {
			err = appendCause(err, c)
		}
		h.Delete()
		return err
	}
	t.releaseAllReduce()
	t.reduce, t.reduceHandle = s, h
	return nil
}

// releaseAllReduce deletes the handle of the current all-reduce, once the library no longer
// calls it (replaced, or the trainer freed).
func (t *Trainer) releaseAllReduce() {
	if t.reduce != nil {
		t.reduceHandle.Delete()
		t.reduce, t.reduceHandle = nil, 0
	}
}

// withCause adds what the host's all-reduce reported to an ErrDistributed it caused.
func (t *Trainer) withCause(err error) error {
	if t.reduce == nil {
		return err
	}
	if c := t.reduce.takeCause(); c != nil && err != nil {
		return appendCause(err, c)
	}
	return err
}

func appendCause(err, cause error) error {
	var e *Error
	if errors.As(err, &e) && e.Code == StatusDistributed {
		return &Error{Code: e.Code, Message: e.Message + " (" + cause.Error() + ")"}
	}
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
		t.releaseAllReduce()
		runtime.SetFinalizer(t, nil)
	}
	return nil
}
