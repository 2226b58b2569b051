package electra

// #include "electra.h"
import "C"

import (
	"runtime"
	"sync"
)

// FineTuneStats is what one fine-tuning step measured (electra_finetune_stats).
type FineTuneStats struct {
	Step         uint64  // updates applied so far, this one included
	Loss         float32 // mean cross-entropy of the batch
	Accuracy     float32 // share of rows classified correctly (before the update)
	LearningRate float32 // learning rate of this update (before layer-wise scaling)
	GradNorm     float32 // global gradient norm before clipping
}

// FineTuner trains a sequence classifier (an ELECTRA encoder plus a classification head).
// Its calls are serialised by a mutex.
type FineTuner struct {
	mu  sync.Mutex
	ptr *C.electra_finetuner
}

// NewFineTuner starts fine-tuning from modelDir: a checkpoint with a discriminator (a fresh
// head for numLabels labels, LABEL_0.., is added) or an existing classifier (continued with
// its config.json id2label labels and ids; pass 0 or its label count, or a larger count to add
// labels after the existing ones; at most 1024). options is as for NewTrainer; keys: learning_rate, warmup_steps, total_steps,
// weight_decay, layerwise_lr_decay, adam_epsilon, bias_correction, max_grad_norm, seed,
// threads, device ("cpu", the default; "cuda" or "cuda:N": ErrCUDA when not compiled in or
// not present), max_memory_bytes (a memory budget, 0 = none beyond the machine's memory;
// ErrOutOfMemory over it), dropout and pool ("cls", the first token's state as HF
// ElectraForSequenceClassification, or "mean", the mean of the non-padding tokens' states, saved
// as "classifier_pooling": "mean"; left out: a classifier's own, "cls" for a new head).
func NewFineTuner(modelDir string, numLabels int, options interface{}) (*FineTuner, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	if numLabels < 0 {
		return nil, newError(StatusInvalidArgument, "invalid argument: numLabels (%d) is negative", numLabels)
	}
	opts, err := optionsString(options)
	if err != nil {
		return nil, err
	}
	p, err := nativeFineTunerNew(modelDir, numLabels, opts)
	if err != nil {
		return nil, err
	}
	f := &FineTuner{ptr: p}
	runtime.SetFinalizer(f, (*FineTuner).Close)
	return f, nil
}

// Step runs one fine-tuning step on batch rows of seqLen ids (mask and types may be nil) with
// one label in [0, NumLabels) per row. Bad input leaves the weights untouched.
func (f *FineTuner) Step(ids, mask, types, labels []int32, batch, seqLen int) (FineTuneStats, error) {
	if _, err := checkInputs(ids, mask, types, batch, seqLen); err != nil {
		return FineTuneStats{}, err
	}
	if len(labels) != batch {
		return FineTuneStats{}, newError(StatusShape, "shape mismatch: len(labels) = %d, want batch = %d", len(labels), batch)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr == nil {
		return FineTuneStats{}, closedError("fine-tuner")
	}
	st, err := nativeFineTunerStep(f.ptr, ids, mask, types, labels, batch, seqLen)
	runtime.KeepAlive(f)
	runtime.KeepAlive(ids)
	runtime.KeepAlive(mask)
	runtime.KeepAlive(types)
	runtime.KeepAlive(labels)
	return st, err
}

// Save writes the classifier as a HuggingFace ElectraForSequenceClassification directory,
// loadable by LoadModel (then Session.Classify) and by transformers.
func (f *FineTuner) Save(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr == nil {
		return closedError("fine-tuner")
	}
	err := nativeFineTunerSave(f.ptr, dir)
	runtime.KeepAlive(f)
	return err
}

// Close frees the fine-tuner. It is idempotent.
func (f *FineTuner) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr != nil {
		nativeFineTunerFree(f.ptr)
		f.ptr = nil
		runtime.SetFinalizer(f, nil)
	}
	return nil
}
