// Package electra binds libelectra, the C ABI of the electra crate: ELECTRA text encoders
// (replaced-token detection, generator logits, hidden states), their pre-training and
// fine-tuning, and text-level calls (a BERT tokenizer equal to HF's, sentence embeddings,
// classification with label names, replaced-word detection, fill-mask).
//
// The package finds electra.h and libelectra with pkg-config (the electra.pc of `make
// install`): set PKG_CONFIG_PATH to its directory when the prefix is not a system one, or
// build with PKG_CONFIG=true CGO_CFLAGS=-I<include dir> CGO_LDFLAGS="-L<lib dir> -lelectra".
// In the repository, bindings/go/test.sh builds the library and runs the tests.
//
// Handles (Model, Session, Trainer, FineTuner, Tokenizer) wrap native objects: call Close when done. A finalizer
// frees a handle that is dropped without Close, but Close releases memory promptly and is
// idempotent.
//
// Concurrency: a Model may be shared by any number of goroutines (typically one Session per
// goroutine). A Session or a Trainer serialises its own calls with a mutex, so concurrent use
// is safe but not parallel. Trainer.Cancel may be called from any goroutine while another
// steps.
//
// Devices: sessions, trainers and fine-tuners run on the CPU unless their options say
// otherwise ("device": "cpu", "cuda" or "cuda:N"; see NewSessionWithOptions, NewTrainer,
// ResumeTrainerWithOptions, NewFineTuner). DeviceCount(DeviceCUDA) says how many GPUs the
// library can use; a device that is not compiled in or not present is ErrCUDA, never a crash.
//
// Errors from the library are *Error values carrying a Status code and the library's
// message; compare codes with errors.Is(err, electra.ErrCancelled) and the like. The binding
// reads the library's thread-local message inside the same cgo call that failed, so messages
// are never mixed up when goroutines move between OS threads.
package electra
