package electra

// Every call into libelectra goes through a shim below. A shim makes the call and, when it
// fails, copies the thread-local error message into a malloc'd string before returning, all
// inside one cgo call: the goroutine cannot migrate to another OS thread in between.
//
// The compiler and linker flags come from pkg-config (electra.pc, installed by `make install`):
// set PKG_CONFIG_PATH to its directory, or PKG_CONFIG=true with CGO_CFLAGS=-I<include dir> and
// CGO_LDFLAGS="-L<lib dir> -lelectra" to give them by hand (see README.md).

/*
#cgo pkg-config: electra
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

static electra_status electra_go_model_load_from_memory(const uint8_t *config, size_t config_len,
		const uint8_t *weights, size_t weights_len, const char *options, electra_model **out, char **err) {
	ELECTRA_GO_CHECK(electra_model_load_from_memory(config, config_len, weights, weights_len, options, out));
}

static electra_status electra_go_model_label_name(const electra_model *m, size_t i, char *buf, size_t cap,
		size_t *len, char **err) {
	ELECTRA_GO_CHECK(electra_model_label_name(m, i, buf, cap, len));
}

static electra_status electra_go_model_tokenizer(const electra_model *m, electra_tokenizer **out, char **err) {
	ELECTRA_GO_CHECK(electra_model_tokenizer(m, out));
}

static electra_status electra_go_tokenizer_load(const char *path, electra_tokenizer **out, char **err) {
	ELECTRA_GO_CHECK(electra_tokenizer_load(path, out));
}

static electra_status electra_go_tokenizer_load_from_memory(const uint8_t *json, size_t len,
		electra_tokenizer **out, char **err) {
	ELECTRA_GO_CHECK(electra_tokenizer_load_from_memory(json, len, out));
}

static electra_status electra_go_tokenizer_get_info(const electra_tokenizer *t, electra_tokenizer_info *info,
		char **err) {
	info->struct_size = (uint32_t)sizeof(electra_tokenizer_info);
	ELECTRA_GO_CHECK(electra_tokenizer_get_info(t, info));
}

static electra_status electra_go_tokenizer_encode(const electra_tokenizer *t, const electra_text *texts,
		const electra_text *pairs, size_t n, int32_t add_special, uint32_t max_length, int32_t *ids,
		int32_t *mask, int32_t *types, uint32_t *offsets, size_t cap, size_t *seq_len, char **err) {
	electra_encode_params p = electra_encode_default_params();
	p.add_special_tokens = add_special;
	p.max_length = max_length;
	ELECTRA_GO_CHECK(electra_tokenizer_encode(t, texts, pairs, n, &p, ids, mask, types, offsets, cap, seq_len));
}

static electra_status electra_go_tokenizer_decode(const electra_tokenizer *t, const int32_t *ids, size_t n,
		int32_t skip_special, char *buf, size_t cap, size_t *len, char **err) {
	ELECTRA_GO_CHECK(electra_tokenizer_decode(t, ids, n, skip_special, buf, cap, len));
}

// Go strings come with their length (_GoString_): no copy, no NUL terminator.
static electra_status electra_go_tokenizer_token_to_id(const electra_tokenizer *t, _GoString_ token,
		int32_t *id, char **err) {
	ELECTRA_GO_CHECK(electra_tokenizer_token_to_id(t, _GoStringPtr(token), _GoStringLen(token), id));
}

static electra_status electra_go_tokenizer_id_to_token(const electra_tokenizer *t, int32_t id, char *buf,
		size_t cap, size_t *len, char **err) {
	ELECTRA_GO_CHECK(electra_tokenizer_id_to_token(t, id, buf, cap, len));
}

static electra_text_params electra_go_text_params(uint32_t batch_size, uint32_t max_length, uint32_t pooling,
		int32_t normalize) {
	electra_text_params p = electra_text_default_params();
	p.batch_size = batch_size;
	p.max_length = max_length;
	p.pooling = pooling;
	p.normalize = normalize;
	return p;
}

static electra_status electra_go_session_embed_texts(electra_session *s, const electra_tokenizer *t,
		const electra_text *texts, size_t n, uint32_t batch_size, uint32_t max_length, uint32_t pooling,
		int32_t normalize, float *out, size_t out_len, char **err) {
	electra_text_params p = electra_go_text_params(batch_size, max_length, pooling, normalize);
	ELECTRA_GO_CHECK(electra_session_embed_texts(s, t, texts, n, &p, out, out_len));
}

static electra_status electra_go_session_classify_texts(electra_session *s, const electra_tokenizer *t,
		const electra_text *texts, const electra_text *pairs, size_t n, uint32_t batch_size, uint32_t max_length,
		float *out, size_t out_len, char **err) {
	electra_text_params p = electra_go_text_params(batch_size, max_length, ELECTRA_POOLING_MEAN, 0);
	ELECTRA_GO_CHECK(electra_session_classify_texts(s, t, texts, pairs, n, &p, out, out_len));
}

static electra_status electra_go_session_detect_text(electra_session *s, const electra_tokenizer *t,
		_GoString_ text, uint32_t batch_size, uint32_t max_length, electra_word_score *out, size_t cap,
		size_t *n_words, char **err) {
	electra_text_params p = electra_go_text_params(batch_size, max_length, ELECTRA_POOLING_MEAN, 0);
	ELECTRA_GO_CHECK(electra_session_detect_text(s, t, _GoStringPtr(text), _GoStringLen(text), &p, out, cap,
		n_words));
}

static electra_status electra_go_session_fill_mask_text(electra_session *s, const electra_tokenizer *t,
		_GoString_ text, size_t top_k, uint32_t batch_size, uint32_t max_length, electra_token_score *out,
		size_t cap, size_t *n_masks, char **err) {
	electra_text_params p = electra_go_text_params(batch_size, max_length, ELECTRA_POOLING_MEAN, 0);
	ELECTRA_GO_CHECK(electra_session_fill_mask_text(s, t, _GoStringPtr(text), _GoStringLen(text), top_k, &p,
		out, cap, n_masks));
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

// bytesPtr points at b's first byte, or at a zero byte when b is empty: the library tells an
// empty buffer (ErrFormat) from a missing one (ErrNullPointer), and an empty Go slice is
// always a buffer.
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		var zero [1]byte
		return (*C.uint8_t)(unsafe.Pointer(&zero[0]))
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// cTexts copies texts into one C allocation, the n electra_text entries followed by their
// bytes (no NUL terminators): cgo forbids handing C Go memory that holds Go pointers, such as
// the headers of a []string. nil for no texts; free the result with C.free.
func cTexts(texts []string) *C.electra_text {
	if len(texts) == 0 {
		return nil
	}
	total := 0
	for _, t := range texts {
		total += len(t)
	}
	hdr := len(texts) * int(unsafe.Sizeof(C.electra_text{}))
	p := C.malloc(C.size_t(hdr + total + 1))
	arr := unsafe.Slice((*C.electra_text)(p), len(texts))
	data := unsafe.Slice((*byte)(unsafe.Add(p, hdr)), total+1)
	off := 0
	for i, t := range texts {
		copy(data[off:], t)
		arr[i].data = (*C.char)(unsafe.Pointer(&data[off]))
		arr[i].len = C.size_t(len(t))
		off += len(t)
	}
	return (*C.electra_text)(p)
}

func cFree(p *C.electra_text) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

// stringCall is a call that writes a NUL-terminated string into (buf, cap) and its length
// into *n, or gives ELECTRA_ERR_BUFFER_TOO_SMALL with *n set.
type stringCall func(buf *C.char, cap C.size_t, n *C.size_t, msg **C.char) C.electra_status

// nativeString runs call with a buffer of guess bytes, and once more with the size the
// library asked for when that was too small.
func nativeString(guess int, call stringCall) (string, error) {
	buf := make([]byte, guess+1)
	for {
		var n C.size_t
		var msg *C.char
		st := call((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n, &msg)
		if st == C.ELECTRA_ERR_BUFFER_TOO_SMALL && int(n)+1 > len(buf) {
			C.free(unsafe.Pointer(msg))
			buf = make([]byte, int(n)+1)
			continue
		}
		if err := errorFrom(st, msg); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

func nativeModelLoadFromMemory(config, weights []byte, options *string) (*C.electra_model, error) {
	var out *C.electra_model
	err := withOptions(options, func(copts *C.char) error {
		var msg *C.char
		st := C.electra_go_model_load_from_memory(bytesPtr(config), C.size_t(len(config)), bytesPtr(weights),
			C.size_t(len(weights)), copts, &out, &msg)
		return errorFrom(st, msg)
	})
	return out, err
}

func nativeModelLabelName(m *C.electra_model, i int) (string, error) {
	return nativeString(32, func(buf *C.char, cap C.size_t, n *C.size_t, msg **C.char) C.electra_status {
		return C.electra_go_model_label_name(m, C.size_t(i), buf, cap, n, msg)
	})
}

func nativeModelTokenizer(m *C.electra_model) (*C.electra_tokenizer, error) {
	var out *C.electra_tokenizer
	var msg *C.char
	st := C.electra_go_model_tokenizer(m, &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeTokenizerLoad(path string) (*C.electra_tokenizer, error) {
	cpath, err := cString("path", path)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var out *C.electra_tokenizer
	var msg *C.char
	st := C.electra_go_tokenizer_load(cpath, &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeTokenizerLoadFromMemory(json []byte) (*C.electra_tokenizer, error) {
	var out *C.electra_tokenizer
	var msg *C.char
	st := C.electra_go_tokenizer_load_from_memory(bytesPtr(json), C.size_t(len(json)), &out, &msg)
	return out, errorFrom(st, msg)
}

func nativeTokenizerFree(t *C.electra_tokenizer) { C.electra_tokenizer_free(t) }

func nativeTokenizerInfo(t *C.electra_tokenizer) (TokenizerInfo, error) {
	var info C.electra_tokenizer_info
	var msg *C.char
	if err := errorFrom(C.electra_go_tokenizer_get_info(t, &info, &msg), msg); err != nil {
		return TokenizerInfo{}, err
	}
	return TokenizerInfo{
		VocabSize: int(info.vocab_size),
		PadID:     int32(info.pad_id),
		UnkID:     int32(info.unk_id),
		ClsID:     int32(info.cls_id),
		SepID:     int32(info.sep_id),
		MaskID:    int32(info.mask_id),
	}, nil
}

// nativeTokenizerEncode fills the arrays (nil with capacity 0: only the row length is asked)
// and returns the row length; ErrBufferTooSmall comes with it set.
func nativeTokenizerEncode(t *C.electra_tokenizer, texts, pairs *C.electra_text, n int, special bool, maxLength uint32,
	ids, mask, types []int32, offsets []uint32, capacity int) (int, error) {
	var seqLen C.size_t
	var msg *C.char
	var offs *C.uint32_t
	if len(offsets) > 0 {
		offs = (*C.uint32_t)(unsafe.Pointer(&offsets[0]))
	}
	st := C.electra_go_tokenizer_encode(t, texts, pairs, C.size_t(n), C.int32_t(boolInt(special)), C.uint32_t(maxLength),
		i32ptr(ids), i32ptr(mask), i32ptr(types), offs, C.size_t(capacity), &seqLen, &msg)
	return int(seqLen), errorFrom(st, msg)
}

func nativeTokenizerDecode(t *C.electra_tokenizer, ids []int32, skipSpecial bool) (string, error) {
	return nativeString(8*len(ids)+16, func(buf *C.char, cap C.size_t, n *C.size_t, msg **C.char) C.electra_status {
		return C.electra_go_tokenizer_decode(t, i32ptr(ids), C.size_t(len(ids)), C.int32_t(boolInt(skipSpecial)),
			buf, cap, n, msg)
	})
}

func nativeTokenizerTokenToID(t *C.electra_tokenizer, token string) (int32, error) {
	var id C.int32_t
	var msg *C.char
	if err := errorFrom(C.electra_go_tokenizer_token_to_id(t, token, &id, &msg), msg); err != nil {
		return -1, err
	}
	return int32(id), nil
}

func nativeTokenizerIDToToken(t *C.electra_tokenizer, id int32) (string, error) {
	return nativeString(24, func(buf *C.char, cap C.size_t, n *C.size_t, msg **C.char) C.electra_status {
		return C.electra_go_tokenizer_id_to_token(t, C.int32_t(id), buf, cap, n, msg)
	})
}

// textParams are the fields of electra_text_params, checked.
type textParams struct {
	batchSize, maxLength, pooling uint32
	normalize                     bool
}

func nativeSessionEmbedTexts(s *C.electra_session, t *C.electra_tokenizer, texts *C.electra_text, n int, p textParams,
	out []float32) error {
	var msg *C.char
	st := C.electra_go_session_embed_texts(s, t, texts, C.size_t(n), C.uint32_t(p.batchSize), C.uint32_t(p.maxLength),
		C.uint32_t(p.pooling), C.int32_t(boolInt(p.normalize)), f32ptr(out), C.size_t(len(out)), &msg)
	return errorFrom(st, msg)
}

func nativeSessionClassifyTexts(s *C.electra_session, t *C.electra_tokenizer, texts, pairs *C.electra_text, n int,
	p textParams, out []float32) error {
	var msg *C.char
	st := C.electra_go_session_classify_texts(s, t, texts, pairs, C.size_t(n), C.uint32_t(p.batchSize),
		C.uint32_t(p.maxLength), f32ptr(out), C.size_t(len(out)), &msg)
	return errorFrom(st, msg)
}

// nativeSessionDetectText writes into out and returns the number of words (with
// ErrBufferTooSmall when out is too short for them).
func nativeSessionDetectText(s *C.electra_session, t *C.electra_tokenizer, text string, p textParams,
	out []C.electra_word_score) (int, error) {
	var n C.size_t
	var msg *C.char
	var o *C.electra_word_score
	if len(out) > 0 {
		o = &out[0]
	}
	st := C.electra_go_session_detect_text(s, t, text, C.uint32_t(p.batchSize), C.uint32_t(p.maxLength), o,
		C.size_t(len(out)), &n, &msg)
	return int(n), errorFrom(st, msg)
}

// nativeSessionFillMaskText writes into out and returns the number of masks (with
// ErrBufferTooSmall when out is too short for them).
func nativeSessionFillMaskText(s *C.electra_session, t *C.electra_tokenizer, text string, topK int, p textParams,
	out []C.electra_token_score) (int, error) {
	var n C.size_t
	var msg *C.char
	var o *C.electra_token_score
	if len(out) > 0 {
		o = &out[0]
	}
	st := C.electra_go_session_fill_mask_text(s, t, text, C.size_t(topK), C.uint32_t(p.batchSize),
		C.uint32_t(p.maxLength), o, C.size_t(len(out)), &n, &msg)
	return int(n), errorFrom(st, msg)
}

func f32ptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
