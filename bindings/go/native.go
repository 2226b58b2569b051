package electra

// Every call into libelectra goes through a shim below. A shim makes the call and, when it
// fails, copies the thread-local error message into a malloc'd string before returning, all
// inside one cgo call: the goroutine cannot migrate to another OS thread in between.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -lelectra -Wl,-rpath,${SRCDIR}/../../target/release
#include <stdlib.h>
#include "electra.h"

// The calling thread's last error message as a malloc'd string (NULL when out of memory).
static char *electra_go_take_error(void) {
	size_t n = electra_last_error_message(NULL, 0);
	char *m = (char *)malloc(n + 1);
	if (m != NULL) {
		electra_last_error_message(m, n + 1);
	}
	return m;
}

#define ELECTRA_GO_CHECK(call)                          \
	do {                                                \
		electra_status st_ = (call);                    \
		if (st_ != ELECTRA_OK) *err = electra_go_take_error(); \
		return st_;                                     \
	} while (0)

static electra_status electra_go_model_load(const char *path, electra_model **out, char **err) {
	ELECTRA_GO_CHECK(electra_model_load(path, out));
}

static electra_status electra_go_model_load_with_options(const char *path, const char *options,
		electra_model **out, char **err) {
	ELECTRA_GO_CHECK(electra_model_load_with_options(path, options, out));
}

static electra_status electra_go_model_get_info(const electra_model *m, electra_model_info *info, char **err) {
	info->struct_size = (uint32_t)sizeof(electra_model_info);
	ELECTRA_GO_CHECK(electra_model_get_info(m, info));
}

static electra_status electra_go_model_save(const electra_model *m, const char *dir, char **err) {
	ELECTRA_GO_CHECK(electra_model_save(m, dir));
}

static electra_status electra_go_session_new(const electra_model *m, electra_session **out, char **err) {
	ELECTRA_GO_CHECK(electra_session_new(m, out));
}

static electra_status electra_go_session_new_with_options(const electra_model *m, const char *options,
		electra_session **out, char **err) {
	ELECTRA_GO_CHECK(electra_session_new_with_options(m, options, out));
}

static electra_status electra_go_device_count(electra_device_kind kind, size_t *count, char **err) {
	ELECTRA_GO_CHECK(electra_device_count(kind, count));
}

static electra_status electra_go_set_default_threads(size_t n, char **err) {
	ELECTRA_GO_CHECK(electra_set_default_threads(n));
}

static electra_status electra_go_default_threads(size_t *n, char **err) {
	ELECTRA_GO_CHECK(electra_default_threads(n));
}

// kind: 0 discriminate, 1 generator logits, 2 hidden states, 3 classify.
static electra_status electra_go_session_run(int kind, electra_session *s, const int32_t *ids,
		const int32_t *mask, const int32_t *types, size_t batch, size_t seq_len, float *out,
		size_t out_len, char **err) {
	switch (kind) {
	case 0:
		ELECTRA_GO_CHECK(electra_session_discriminate(s, ids, mask, types, batch, seq_len, out, out_len));
	case 1:
		ELECTRA_GO_CHECK(electra_session_generator_logits(s, ids, mask, types, batch, seq_len, out, out_len));
	case 2:
		ELECTRA_GO_CHECK(electra_session_hidden_states(s, ids, mask, types, batch, seq_len, out, out_len));
	default:
		ELECTRA_GO_CHECK(electra_session_classify(s, ids, mask, types, batch, seq_len, out, out_len));
	}
}

static electra_status electra_go_trainer_new(const char *init, const char *options, electra_trainer **out, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_new(init, options, out));
}

static electra_status electra_go_trainer_step(electra_trainer *t, const int32_t *ids, const int32_t *mask,
		const int32_t *types, size_t batch, size_t seq_len, electra_step_stats *stats, char **err) {
	stats->struct_size = (uint32_t)sizeof(electra_step_stats);
	ELECTRA_GO_CHECK(electra_trainer_step(t, ids, mask, types, batch, seq_len, stats));
}

static electra_status electra_go_trainer_save(electra_trainer *t, const char *dir, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_save(t, dir));
}

static electra_status electra_go_trainer_export(electra_trainer *t, const char *dir, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_export(t, dir));
}

static electra_status electra_go_trainer_resume(const char *dir, electra_trainer **out, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_resume(dir, out));
}

static electra_status electra_go_trainer_resume_with_options(const char *dir, const char *options,
		electra_trainer **out, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_resume_with_options(dir, options, out));
}

// The cgo-exported trampoline of allreduce.go: user_data is a runtime/cgo.Handle of the Go func.
extern int32_t electraGoAllReduce(float *data, size_t count, void *user_data);

// with_fn 0 passes a NULL callback (the library's own error for it).
static electra_status electra_go_trainer_set_allreduce(electra_trainer *t, int with_fn, uintptr_t handle, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_set_allreduce(t, with_fn ? electraGoAllReduce : NULL, (void *)handle));
}

static electra_status electra_go_trainer_get_model(electra_trainer *t, electra_model **out, char **err) {
	ELECTRA_GO_CHECK(electra_trainer_get_model(t, out));
}
static electra_status electra_go_finetuner_new(const char *dir, size_t num_labels, const char *options,
		electra_finetuner **out, char **err) {
	ELECTRA_GO_CHECK(electra_finetuner_new(dir, num_labels, options, out));
}

static electra_status electra_go_finetuner_step(electra_finetuner *f, const int32_t *ids, const int32_t *mask,
		const int32_t *types, size_t batch, size_t seq_len, const int32_t *labels, electra_finetune_stats *stats,
		char **err) {
	stats->struct_size = (uint32_t)sizeof(electra_finetune_stats);
	ELECTRA_GO_CHECK(electra_finetuner_step(f, ids, mask, types, batch, seq_len, labels, stats));
}

static electra_status electra_go_finetuner_save(electra_finetuner *f, const char *dir, char **err) {
	ELECTRA_GO_CHECK(electra_finetuner_save(f, dir));
}
*/
import "C"

import (
	"encoding/json"
	"strings"
	"unsafe"
)

// HeaderABIVersion is ELECTRA_ABI_VERSION from the electra.h this package was compiled
// against. ABIVersion reports the library's; CheckABI compares them.
const HeaderABIVersion = uint32(C.ELECTRA_ABI_VERSION)

// errorFrom builds the *Error of a failed call and frees the message copied by the shim.
func errorFrom(st C.electra_status, msg *C.char) error {
	if st == C.ELECTRA_OK {
		return nil
	}
	text := "(no message: out of memory)"
	if msg != nil {
		text = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return &Error{Code: Status(st), Message: text}
}

// cString converts a Go string argument; an embedded NUL would silently truncate a path, so
// it is refused. Free the result with C.free.
func cString(what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, newError(StatusInvalidArgument, "%s contains a NUL byte", what)
	}
	return C.CString(s), nil
}

func i32ptr(s []int32) *C.int32_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(&s[0]))
}

func nativeVersion() string    { return C.GoString(C.electra_version()) }
func nativeABIVersion() uint32 { return uint32(C.electra_abi_version()) }
func nativeStatusStr(s Status) string {
	return C.GoString(C.electra_status_str(C.electra_status(s)))
}

func nativeModelLoad(path string) (*C.electra_model, error) {
	cpath, err := cString("path", path)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var out *C.electra_model
	var msg *C.char
	st := C.electra_go_model_load(cpath, &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeModelLoadWithOptions(path string, options *string) (*C.electra_model, error) {
	cpath, err := cString("path", path)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var out *C.electra_model
	err = withOptions(options, func(copts *C.char) error {
		var msg *C.char
		return errorFrom(C.electra_go_model_load_with_options(cpath, copts, &out, &msg), msg)
	})
	return out, err
}

func nativeModelFree(m *C.electra_model) { C.electra_model_free(m) }

func nativeModelInfo(m *C.electra_model) (ModelInfo, error) {
	var info C.electra_model_info
	var msg *C.char
	if err := errorFrom(C.electra_go_model_get_info(m, &info, &msg), msg); err != nil {
		return ModelInfo{}, err
	}
	return ModelInfo{
		VocabSize:             int(info.vocab_size),
		HiddenSize:            int(info.hidden_size),
		EmbeddingSize:         int(info.embedding_size),
		MaxPositionEmbeddings: int(info.max_position_embeddings),
		TypeVocabSize:         int(info.type_vocab_size),
		NumHiddenLayers:       int(info.num_hidden_layers),
		HasDiscriminator:      info.has_discriminator != 0,
		HasGenerator:          info.has_generator != 0,
		GeneratorHiddenSize:   int(info.generator_hidden_size),
		NumParameters:         uint64(info.num_parameters),
		NumLabels:             int(info.num_labels),
		Int8:                  info.weight_format == C.ELECTRA_WEIGHTS_INT8,
	}, nil
}

func nativeModelSave(m *C.electra_model, dir string) error {
	cdir, err := cString("dir", dir)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cdir))
	var msg *C.char
	return errorFrom(C.electra_go_model_save(m, cdir, &msg), msg)
}

func nativeSessionNew(m *C.electra_model) (*C.electra_session, error) {
	var out *C.electra_session
	var msg *C.char
	st := C.electra_go_session_new(m, &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeSessionNewWithOptions(m *C.electra_model, options *string) (*C.electra_session, error) {
	var out *C.electra_session
	err := withOptions(options, func(copts *C.char) error {
		var msg *C.char
		return errorFrom(C.electra_go_session_new_with_options(m, copts, &out, &msg), msg)
	})
	return out, err
}

func nativeSessionFree(s *C.electra_session) { C.electra_session_free(s) }

func nativeDeviceCount(kind DeviceKind) (int, error) {
	var n C.size_t
	var msg *C.char
	if err := errorFrom(C.electra_go_device_count(C.electra_device_kind(kind), &n, &msg), msg); err != nil {
		return 0, err
	}
	return int(n), nil
}

func nativeSetDefaultThreads(n int) error {
	var msg *C.char
	return errorFrom(C.electra_go_set_default_threads(C.size_t(n), &msg), msg)
}

func nativeDefaultThreads() (int, error) {
	var n C.size_t
	var msg *C.char
	if err := errorFrom(C.electra_go_default_threads(&n, &msg), msg); err != nil {
		return 0, err
	}
	return int(n), nil
}

// nativeSessionRun passes the slices' backing arrays to C for the duration of the call only
// (the cgo rules allow it: they hold no Go pointers). Lengths are checked by the caller.
func nativeSessionRun(kind int, s *C.electra_session, ids, mask, types []int32, batch, seqLen int, out []float32) error {
	var msg *C.char
	st := C.electra_go_session_run(C.int(kind), s, i32ptr(ids), i32ptr(mask), i32ptr(types),
		C.size_t(batch), C.size_t(seqLen), (*C.float)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &msg)
	return errorFrom(st, msg)
}

// optionsString turns the options argument of NewTrainer, NewFineTuner, NewSessionWithOptions
// and ResumeTrainerWithOptions into JSON text (nil: no options).
func optionsString(options interface{}) (*string, error) {
	var s string
	switch o := options.(type) {
	case nil:
		return nil, nil
	case string:
		s = o
	case []byte:
		s = string(o)
	case json.RawMessage:
		s = string(o)
	default:
		b, err := json.Marshal(o)
		if err != nil {
			return nil, newError(StatusInvalidArgument, "invalid argument: options: %v", err)
		}
		s = string(b)
	}
	return &s, nil
}

// withOptions runs f with the options as a C string (NULL for none).
func withOptions(options *string, f func(*C.char) error) error {
	if options == nil {
		return f(nil)
	}
	c, err := cString("options", *options)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(c))
	return f(c)
}

func nativeTrainerNew(init string, options *string) (*C.electra_trainer, error) {
	cinit, err := cString("init", init)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cinit))
	var out *C.electra_trainer
	err = withOptions(options, func(copts *C.char) error {
		var msg *C.char
		return errorFrom(C.electra_go_trainer_new(cinit, copts, &out, &msg), msg)
	})
	return out, err
}

func nativeTrainerFree(t *C.electra_trainer)   { C.electra_trainer_free(t) }
func nativeTrainerCancel(t *C.electra_trainer) { C.electra_trainer_cancel(t) }

func nativeTrainerStep(t *C.electra_trainer, ids, mask, types []int32, batch, seqLen int) (StepStats, error) {
	var stats C.electra_step_stats
	var msg *C.char
	st := C.electra_go_trainer_step(t, i32ptr(ids), i32ptr(mask), i32ptr(types), C.size_t(batch), C.size_t(seqLen),
		&stats, &msg)
	if err := errorFrom(st, msg); err != nil {
		return StepStats{}, err
	}
	return StepStats{
		Step:         uint64(stats.step),
		Loss:         float32(stats.loss),
		MLMLoss:      float32(stats.mlm_loss),
		DiscLoss:     float32(stats.disc_loss),
		DiscAccuracy: float32(stats.disc_accuracy),
		LearningRate: float32(stats.learning_rate),
		GradNorm:     float32(stats.grad_norm),
	}, nil
}

func nativeTrainerDirOp(export bool, t *C.electra_trainer, dir string) error {
	cdir, err := cString("dir", dir)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cdir))
	var msg *C.char
	var st C.electra_status
	if export {
		st = C.electra_go_trainer_export(t, cdir, &msg)
	} else {
		st = C.electra_go_trainer_save(t, cdir, &msg)
	}
	return errorFrom(st, msg)
}

func nativeTrainerResume(dir string) (*C.electra_trainer, error) {
	cdir, err := cString("dir", dir)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cdir))
	var out *C.electra_trainer
	var msg *C.char
	st := C.electra_go_trainer_resume(cdir, &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeTrainerResumeWithOptions(dir string, options *string) (*C.electra_trainer, error) {
	cdir, err := cString("dir", dir)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cdir))
	var out *C.electra_trainer
	err = withOptions(options, func(copts *C.char) error {
		var msg *C.char
		return errorFrom(C.electra_go_trainer_resume_with_options(cdir, copts, &out, &msg), msg)
	})
	return out, err
}

// nativeTrainerSetAllReduce passes the handle's value as the callback's user_data (0 with
// withFn false: a NULL callback).
func nativeTrainerSetAllReduce(t *C.electra_trainer, withFn bool, handle uintptr) error {
	var msg *C.char
	fn := C.int(0)
	if withFn {
		fn = 1
	}
	return errorFrom(C.electra_go_trainer_set_allreduce(t, fn, C.uintptr_t(handle), &msg), msg)
}

func nativeTrainerGetModel(t *C.electra_trainer) (*C.electra_model, error) {
	var out *C.electra_model
	var msg *C.char
	st := C.electra_go_trainer_get_model(t, &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeFineTunerNew(dir string, numLabels int, options *string) (*C.electra_finetuner, error) {
	cdir, err := cString("modelDir", dir)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cdir))
	var out *C.electra_finetuner
	err = withOptions(options, func(copts *C.char) error {
		var msg *C.char
		return errorFrom(C.electra_go_finetuner_new(cdir, C.size_t(numLabels), copts, &out, &msg), msg)
	})
	return out, err
}

func nativeFineTunerFree(f *C.electra_finetuner) { C.electra_finetuner_free(f) }

func nativeFineTunerStep(f *C.electra_finetuner, ids, mask, types, labels []int32, batch, seqLen int) (FineTuneStats, error) {
	var stats C.electra_finetune_stats
	var msg *C.char
	st := C.electra_go_finetuner_step(f, i32ptr(ids), i32ptr(mask), i32ptr(types), C.size_t(batch), C.size_t(seqLen),
		i32ptr(labels), &stats, &msg)
	if err := errorFrom(st, msg); err != nil {
		return FineTuneStats{}, err
	}
	return FineTuneStats{
		Step:         uint64(stats.step),
		Loss:         float32(stats.loss),
		Accuracy:     float32(stats.accuracy),
		LearningRate: float32(stats.learning_rate),
		GradNorm:     float32(stats.grad_norm),
	}, nil
}

func nativeFineTunerSave(f *C.electra_finetuner, dir string) error {
	cdir, err := cString("dir", dir)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cdir))
	var msg *C.char
	return errorFrom(C.electra_go_finetuner_save(f, cdir, &msg), msg)
}
