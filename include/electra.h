/*
 * electra.h: the C interface of libelectra.
 *
 * libelectra runs ELECTRA text encoders (Clark et al., 2020): the discriminator (replaced-token
 * detection), the generator (a small masked language model) and their hidden states. It reads
 * HuggingFace checkpoints (config.json + model.safetensors) and matches PyTorch `transformers`
 * to about 1e-5 relative error. Link with -lelectra (libelectra.so / libelectra.a).
 *
 * VERSIONING
 *   ELECTRA_ABI_VERSION is the ABI this header describes; electra_abi_version() is the ABI of
 *   the library loaded at run time. Refuse to run when they differ. Status codes are never
 *   renumbered, and structs that carry a struct_size field only grow at the end.
 *
 * OWNERSHIP
 *   - Every handle made by a *_load or *_new function is released by its *_free function
 *     (electra_model_free, electra_session_free). The free functions accept NULL.
 *   - A handle is an opaque value, not an address: never dereference it. The library checks
 *     every handle it is given against the handles it has live, so NULL, a freed handle (its
 *     value is never reused), a handle of another kind or any made-up value is
 *     ELECTRA_ERR_INVALID_HANDLE, and freeing one of them twice, or freeing NULL, does nothing.
 *   - A create function sets *out to NULL first and assigns it only on success.
 *   - A session keeps its model's weights alive, so models and sessions may be freed in any
 *     order.
 *   - Input arrays are borrowed for the duration of the call only. Results are written into
 *     output buffers owned by the caller: pass the buffer and its length in elements
 *     (out, out_len). A buffer that is too small gives ELECTRA_ERR_BUFFER_TOO_SMALL and is
 *     left untouched. On any error, no output is written.
 *   - Strings and paths are UTF-8 and NUL-terminated. Strings returned by the library
 *     (electra_version, electra_status_str) are static: never free them.
 *   - Never pass memory allocated by libelectra to free(), nor yours to an electra_*_free.
 *
 * THREAD SAFETY
 *   A model may be shared by sessions on several threads (calls that take a
 *   `const electra_model *` may run concurrently). A session, trainer or fine-tuner is used by
 *   one thread at a time but may move between threads; a second thread calling into it while
 *   a call runs gets ELECTRA_ERR_INVALID_ARGUMENT ("in use by another thread"), not a data
 *   race. Any thread may call electra_trainer_cancel on a running trainer. Any thread may free
 *   any handle at any time, even while another thread is inside a call on it: the free takes
 *   effect at once (later calls on the handle get ELECTRA_ERR_INVALID_HANDLE), the call in
 *   flight finishes normally, and the memory is released when it returns. Global functions
 *   (version, status strings, error messages) are thread-safe. No global initialisation is
 *   needed.
 *
 * WORKER THREADS
 *   On the CPU, sessions, trainers and fine-tuners share one process-wide pool of worker
 *   threads by default (options `"threads": 0`). Its size is one per core unless
 *   electra_set_default_threads(n) set it before the pool started (it starts with the first
 *   handle that uses it, and never resizes). `"threads": 1` runs a handle's calls on the
 *   calling thread, with no worker thread at all; `"threads": N` another count than the shared
 *   pool's, or `"own_pool": true`, gives the handle a pool of its own. Results are the same
 *   bits whatever the choice.
 *
 * FORK
 *   A session, trainer or fine-tuner uses worker threads, which a child made by fork() does
 *   not have (the child starts a shared pool of its own when it needs one). One created before fork() is unusable in the child: every call on it there
 *   returns ELECTRA_ERR_INVALID_HANDLE at once (the message says why), never hangs, and its
 *   *_free only forgets it. Models stay usable in the child: create new sessions, trainers or
 *   fine-tuners there. The parent's handles are unaffected. Do not fork while another thread
 *   is inside an electra call (a lock that thread holds would stay held in the child).
 *
 * SAVES
 *   electra_model_save, electra_trainer_save, electra_trainer_export and
 *   electra_finetuner_save write a directory (created if missing) and touch nothing in it they
 *   did not write: other files and directories there stay as they are. A path that exists and
 *   is not a directory is ELECTRA_ERR_IO ("not a directory"); a symbolic link to a directory
 *   saves into its target. A file in the way that an earlier save did not write (your own
 *   config.json, say) refuses the save before anything changes. A failed save leaves the
 *   directory exactly as it was; a crash leaves the old version or, finished by the next load,
 *   the new one. docs/ROBUSTNESS.md, "The save contract", has the details.
 *
 * DEVICES
 *   Sessions, trainers and fine-tuners run on the CPU unless their options say otherwise:
 *   "device": "cpu" | "cuda" | "cuda:N" in the options JSON of electra_session_new_with_options,
 *   electra_trainer_new, electra_trainer_resume_with_options and electra_finetuner_new.
 *   electra_device_count(ELECTRA_DEVICE_CUDA, &n) says how many GPUs this library can use. A
 *   device that is not compiled in (the `cuda` feature) or not present is ELECTRA_ERR_CUDA with
 *   a message saying which, never a crash. The device does not change the numbers a model
 *   computes beyond rounding, nor the randomness of training.
 *
 * ERRORS
 *   Every fallible call returns an electra_status: ELECTRA_OK (0) on success, otherwise one
 *   of the ELECTRA_ERR_* codes. electra_status_str(code) names a code. The detailed message of
 *   the most recent failure (file, tensor, shape, argument) is kept per thread: read it with
 *   electra_last_error_message on the same thread, before the next failing call. Successful
 *   calls leave it unchanged. No panic or exception crosses the boundary
 *   (ELECTRA_ERR_PANIC reports one that was caught).
 *
 * EXAMPLE: the similarity of two sentences
 *   #include <stdio.h>
 *   #include "electra.h"
 *
 *   int main(void) {
 *       electra_model *model = NULL;
 *       electra_session *session = NULL;
 *       electra_text texts[2] = {{"the whale swam", 14}, {"a whale swims", 13}};
 *       electra_text_params p = electra_text_default_params();
 *       float e[2 * 256];                   // 2 * hidden_size (electra_model_get_info)
 *       char msg[512];
 *       p.normalize = 1;                    // unit rows: a dot product is the cosine
 *       electra_status st = electra_model_load("models/electra-small", &model);  // + tokenizer
 *       if (st == ELECTRA_OK) st = electra_session_new(model, &session);
 *       if (st == ELECTRA_OK) st = electra_session_embed_texts(session, NULL, texts, 2, &p, e, 512);
 *       if (st != ELECTRA_OK) {
 *           electra_last_error_message(msg, sizeof msg);
 *           fprintf(stderr, "electra: %s: %s\n", electra_status_str(st), msg);
 *       } else {
 *           float cos = 0;
 *           for (int k = 0; k < 256; k++) cos += e[k] * e[256 + k];
 *           printf("cosine %f\n", cos);
 *       }
 *       electra_session_free(session);
 *       electra_model_free(model);
 *       return st == ELECTRA_OK ? 0 : 1;
 *   }
 *   Calls on token ids (electra_session_discriminate, ...) take electra_tokenizer_encode's ids.
 */

#ifndef ELECTRA_H
#define ELECTRA_H

/* Warning: this file is generated by cbindgen from src/ffi/ (see cbindgen.toml); do not edit it by hand. */

#include <stddef.h>
#include <stdint.h>
/** Marks a deprecated function, with a note saying what to use instead. */
#if defined(__GNUC__) || defined(__clang__)
#define ELECTRA_DEPRECATED(note) __attribute__((deprecated(note)))
#elif defined(_MSC_VER)
#define ELECTRA_DEPRECATED(note) __declspec(deprecated(note))
#else
#define ELECTRA_DEPRECATED(note)
#endif

/**
 * Version of the C ABI this header describes; bumped on any incompatible change. Compare it
 * with `electra_abi_version()`, the version of the library loaded at run time.
 */
#define ELECTRA_ABI_VERSION 1

/**
 * `electra_model_info.weight_format`: f32 weights (as trained).
 */
#define ELECTRA_WEIGHTS_F32 0

/**
 * `electra_model_info.weight_format`: int8 Linear and word-embedding weights with per-row f32
 * scales; inference only (training and fine-tuning refuse it with `ELECTRA_ERR_UNSUPPORTED`).
 */
#define ELECTRA_WEIGHTS_INT8 1

/**
 * `electra_text_params.pooling`: the mean over the text's tokens (the default).
 */
#define ELECTRA_POOLING_MEAN 0

/**
 * `electra_text_params.pooling`: the `[CLS]` token's state.
 */
#define ELECTRA_POOLING_CLS 1

/**
 * Opaque fine-tuning state. Free with `electra_finetuner_free`.
 */
typedef struct electra_finetuner electra_finetuner;

/**
 * Opaque handle to a loaded model. Free with `electra_model_free`.
 */
typedef struct electra_model electra_model;

/**
 * Opaque inference session. Free with `electra_session_free`.
 */
typedef struct electra_session electra_session;

/**
 * Opaque tokenizer handle. Free with `electra_tokenizer_free`.
 */
typedef struct electra_tokenizer electra_tokenizer;

/**
 * Opaque pre-training state (model, optimizer, RNG). Free with `electra_trainer_free`.
 */
typedef struct electra_trainer electra_trainer;

/**
 * Result of every fallible C call: 0 on success, one of the `ELECTRA_ERR_*` codes otherwise.
 */
typedef int32_t electra_status;

/**
 * A kind of compute device (`ELECTRA_DEVICE_*`).
 */
typedef int32_t electra_device_kind;

/**
 * What one `electra_finetuner_step` measured. Set `struct_size` to
 * `sizeof(electra_finetune_stats)`; the library fills only the fields that fit.
 */
typedef struct {
    /**
     * Set by the caller: `sizeof(electra_finetune_stats)`.
     */
    uint32_t struct_size;
    /**
     * Updates applied so far, this one included.
     */
    uint64_t step;
    /**
     * Mean cross-entropy of the batch.
     */
    float loss;
    /**
     * Share of rows classified correctly (before the update).
     */
    float accuracy;
    /**
     * Learning rate of this update (before layer-wise scaling).
     */
    float learning_rate;
    /**
     * Global gradient norm before clipping.
     */
    float grad_norm;
} electra_finetune_stats;

/**
 * Model dimensions, filled by `electra_model_get_info`. Set `struct_size` to
 * `sizeof(electra_model_info)` first; the library writes only the fields that fit, so older
 * callers keep working when fields are appended.
 */
typedef struct {
    /**
     * Set by the caller: `sizeof(electra_model_info)`.
     */
    uint32_t struct_size;
    /**
     * V: vocabulary size.
     */
    uint32_t vocab_size;
    /**
     * H: the discriminator's hidden width (the generator's when there is no discriminator).
     */
    uint32_t hidden_size;
    /**
     * E: embedding width.
     */
    uint32_t embedding_size;
    /**
     * Largest seq_len accepted.
     */
    uint32_t max_position_embeddings;
    /**
     * Number of token types accepted.
     */
    uint32_t type_vocab_size;
    /**
     * Encoder layers of the discriminator (else the generator).
     */
    uint32_t num_hidden_layers;
    /**
     * 1 when the model has a discriminator.
     */
    int32_t has_discriminator;
    /**
     * 1 when the model has a generator.
     */
    int32_t has_generator;
    /**
     * The generator's hidden width (0 without a generator).
     */
    uint32_t generator_hidden_size;
    /**
     * Total number of distinct parameters.
     */
    uint64_t num_parameters;
    /**
     * Labels of the classification head (0 without one).
     */
    uint32_t num_labels;
    /**
     * How the Linear weights are stored: `ELECTRA_WEIGHTS_F32` or `ELECTRA_WEIGHTS_INT8` (a
     * model quantized by `electra quantize` or with the load option `"quantize": "int8"`).
     */
    uint32_t weight_format;
} electra_model_info;

/**
 * How `electra_session_new_with_params` opens a session; start from
 * `electra_session_default_params()`. The fields are the JSON keys of
 * `electra_session_new_with_options`, with the same meaning.
 */
typedef struct {
    /**
     * `sizeof(electra_session_params)`, set by `electra_session_default_params`.
     */
    uint32_t struct_size;
    /**
     * `"cpu"` (NULL, the default), `"cuda"` or `"cuda:N"`.
     */
    const char *device;
    /**
     * Host worker threads, as the JSON key `threads` (0, the default: the process-wide pool;
     * 1: the calling thread). Results do not depend on it.
     */
    uint64_t threads;
    /**
     * 1: a worker pool of the session's own, as the JSON key `own_pool`; 0 (the default).
     */
    int32_t own_pool;
    /**
     * Memory budget in bytes; 0 (the default): none beyond the machine's memory.
     */
    uint64_t max_memory_bytes;
    /**
     * CPU kernel cap: NULL (`ELECTRA_SIMD`, else `"best"`), `"avx512"`, `"avx2"`, `"neon"`,
     * `"scalar"`.
     */
    const char *simd;
    /**
     * CPU f32 products: NULL (`ELECTRA_F32_KERNEL`, else `"packed"`) or `"gemm"`.
     */
    const char *f32_kernel;
    /**
     * CUDA TF32 products: -1 (the default: `ELECTRA_CUDA_TF32`, else off), 0 or 1.
     */
    int32_t tf32;
} electra_session_params;

/**
 * How `electra_model_load_with_params` reads a model; start from
 * `electra_load_default_params()`. The fields are the JSON keys of
 * `electra_model_load_with_options`.
 */
typedef struct {
    /**
     * `sizeof(electra_load_params)`, set by `electra_load_default_params`.
     */
    uint32_t struct_size;
    /**
     * 1: accept tensors the config does not account for; 0 (the default): an error.
     */
    int32_t allow_unused_tensors;
    /**
     * `"f32"` (NULL, the default: as stored) or `"int8"` (quantize as it loads).
     */
    const char *quantize;
} electra_load_params;

/**
 * How `electra_trainer_new_with_params` trains; start from `electra_trainer_default_params()`.
 * The fields are the JSON keys of `electra_trainer_new` with the same meaning and defaults;
 * `special_token_ids` (a list), `embedding_sharing`, `disc_mlm_weight`,
 * `disc_label_smoothing`, `rtd_head`, `tie_generator_output`, `cls_contrast_weight` and
 * `cls_contrast_temperature` (later keys: this struct keeps its version-1 layout)
 * are JSON-only.
 */
typedef struct {
    /**
     * `sizeof(electra_trainer_params)`, set by `electra_trainer_default_params`.
     */
    uint32_t struct_size;
    /**
     * Peak learning rate (default 5e-4).
     */
    float learning_rate;
    /**
     * Linear warm-up steps (default 10000).
     */
    uint64_t warmup_steps;
    /**
     * Steps of the linear decay to 0 (default 1000000).
     */
    uint64_t total_steps;
    /**
     * AdamW weight decay (default 0.01).
     */
    float weight_decay;
    /**
     * AdamW epsilon (default 1e-6).
     */
    float adam_epsilon;
    /**
     * AdamW beta1 (default 0.9).
     */
    float adam_beta1;
    /**
     * AdamW beta2 (default 0.999).
     */
    float adam_beta2;
    /**
     * 1: Adam bias correction; 0 (the default, as the paper's code).
     */
    int32_t bias_correction;
    /**
     * Global gradient-norm clip (default 1.0).
     */
    float max_grad_norm;
    /**
     * Fraction of tokens masked (default 0.15).
     */
    double mask_prob;
    /**
     * Generator loss weight (default 1).
     */
    float gen_weight;
    /**
     * Discriminator loss weight (default 50).
     */
    float disc_weight;
    /**
     * Sampling temperature of the generator (default 1).
     */
    float temperature;
    /**
     * `"electra"` (NULL, the default) or `"mlm"`.
     */
    const char *objective;
    /**
     * Generator width as a fraction of the discriminator's for a preset (0: the preset's).
     */
    double generator_hidden_fraction;
    /**
     * Vocabulary size of a preset (0: the preset's).
     */
    uint64_t vocab_size;
    /**
     * Longest sequence (default 128, or the model's positions when fewer).
     */
    uint64_t max_seq_len;
    /**
     * The `[MASK]` id (default 103, BERT's).
     */
    int32_t mask_token_id;
    /**
     * Seed of initialisation, masking, sampling and dropout (default 0).
     */
    uint64_t seed;
    /**
     * Host worker threads, as `electra_session_params.threads`.
     */
    uint64_t threads;
    /**
     * 1: a worker pool of the trainer's own; 0 (the default).
     */
    int32_t own_pool;
    /**
     * `"cpu"` (NULL, the default), `"cuda"` or `"cuda:N"`.
     */
    const char *device;
    /**
     * Memory budget in bytes (0, the default: none).
     */
    uint64_t max_memory_bytes;
    /**
     * Micro-batches per optimizer step (default 1).
     */
    uint64_t accumulate_steps;
    /**
     * `"none"` (NULL, the default) or `"mpi"`.
     */
    const char *distributed;
    /**
     * This process's rank (default 0).
     */
    uint64_t rank;
    /**
     * Number of ranks (default 1).
     */
    uint64_t world_size;
    /**
     * Seconds a collective may wait (default 600).
     */
    double collective_timeout_s;
    /**
     * CPU kernel cap, as `electra_session_params.simd`.
     */
    const char *simd;
    /**
     * CUDA TF32 products: -1 (the default), 0 or 1.
     */
    int32_t tf32;
    /**
     * Dropout: negative (-1, the default) config.json's probabilities; 0 none; p in (0, 1)
     * every dropout at p.
     */
    float dropout;
} electra_trainer_params;

/**
 * How `electra_finetuner_new_with_params` fine-tunes; start from
 * `electra_finetuner_default_params()`. The fields are the JSON keys of `electra_finetuner_new`
 * with the same meaning and defaults (all but `pool`, a later key: this struct keeps its
 * version-1 layout, so mean pooling is asked for through `electra_finetuner_new`'s JSON).
 */
typedef struct {
    /**
     * `sizeof(electra_finetuner_params)`, set by `electra_finetuner_default_params`.
     */
    uint32_t struct_size;
    /**
     * Peak learning rate (0, the default: by the encoder's width, 3e-4 up to 256, 1e-4 up to
     * 768, 5e-5 above: the paper's ELECTRA-Small, Base and Large rates).
     */
    float learning_rate;
    /**
     * Linear warm-up steps.
     */
    uint64_t warmup_steps;
    /**
     * Steps of the linear decay to 0.
     */
    uint64_t total_steps;
    /**
     * AdamW weight decay.
     */
    float weight_decay;
    /**
     * Layer-wise learning-rate decay (1: none).
     */
    float layerwise_lr_decay;
    /**
     * AdamW epsilon.
     */
    float adam_epsilon;
    /**
     * 1: Adam bias correction; 0: none.
     */
    int32_t bias_correction;
    /**
     * Global gradient-norm clip.
     */
    float max_grad_norm;
    /**
     * Seed of the head's initialisation and of dropout.
     */
    uint64_t seed;
    /**
     * Host worker threads, as `electra_session_params.threads`.
     */
    uint64_t threads;
    /**
     * 1: a worker pool of the fine-tuner's own; 0 (the default).
     */
    int32_t own_pool;
    /**
     * `"cpu"` (NULL, the default), `"cuda"` or `"cuda:N"`.
     */
    const char *device;
    /**
     * Memory budget in bytes (0: none).
     */
    uint64_t max_memory_bytes;
    /**
     * CPU kernel cap, as `electra_session_params.simd`.
     */
    const char *simd;
    /**
     * CUDA TF32 products: -1 (the default), 0 or 1.
     */
    int32_t tf32;
    /**
     * Dropout: negative (-1, the default) config.json's; 0 none; p in (0, 1) all at p.
     */
    float dropout;
} electra_finetuner_params;

/**
 * How the `electra_session_*_text*` calls run; start from `electra_text_default_params()`.
 */
typedef struct {
    /**
     * `sizeof(electra_text_params)`, set by `electra_text_default_params`.
     */
    uint32_t struct_size;
    /**
     * Texts per forward pass (0, the default: 32). Texts are sorted by length and padded per
     * batch; results do not depend on it.
     */
    uint32_t batch_size;
    /**
     * Cut each text to this many tokens, `[CLS]`/`[SEP]` included (0, the default: the model's
     * `max_position_embeddings`; more than that is `ELECTRA_ERR_INVALID_ARGUMENT`).
     */
    uint32_t max_length;
    /**
     * Embeddings: `ELECTRA_POOLING_MEAN` (the default) or `ELECTRA_POOLING_CLS`.
     */
    uint32_t pooling;
    /**
     * Embeddings: 1 to scale each to unit length (cosine similarity is then a dot product);
     * 0, the default: as pooled.
     */
    int32_t normalize;
} electra_text_params;

/**
 * A text passed by pointer and length: UTF-8, not NUL-terminated (a NUL byte is a character,
 * which the BERT normalizer drops, as HF does). `data` may be NULL when `len` is 0.
 */
typedef struct {
    /**
     * The text's bytes.
     */
    const char *data;
    /**
     * Their number.
     */
    size_t len;
} electra_text;

/**
 * One word of `electra_session_detect_text`.
 */
typedef struct {
    /**
     * Byte offset of the word's first byte in the text.
     */
    uint32_t start;
    /**
     * Byte offset past its last byte.
     */
    uint32_t end;
    /**
     * Probability that the word was replaced (the largest of its WordPiece pieces').
     */
    float score;
} electra_word_score;

/**
 * One candidate of `electra_session_fill_mask_text`.
 */
typedef struct {
    /**
     * The token id (`electra_tokenizer_id_to_token` gives its text).
     */
    int32_t id;
    /**
     * Its probability at that position.
     */
    float score;
} electra_token_score;

/**
 * What one `electra_trainer_step` measured. Set `struct_size` to `sizeof(electra_step_stats)`;
 * the library fills only the fields that fit, so fields can be appended compatibly.
 */
typedef struct {
    /**
     * Set by the caller: `sizeof(electra_step_stats)`.
     */
    uint32_t struct_size;
    /**
     * Updates applied so far, this one included.
     */
    uint64_t step;
    /**
     * gen_weight·mlm_loss + disc_weight·disc_loss.
     */
    float loss;
    /**
     * Generator cross-entropy at the masked positions.
     */
    float mlm_loss;
    /**
     * Discriminator BCE over real tokens (0 for the mlm objective).
     */
    float disc_loss;
    /**
     * Share of real tokens the discriminator labels correctly.
     */
    float disc_accuracy;
    /**
     * Learning rate this step used.
     */
    float learning_rate;
    /**
     * Global gradient norm before clipping.
     */
    float grad_norm;
} electra_step_stats;

/**
 * How `electra_tokenizer_encode` encodes; start from `electra_encode_default_params()`.
 */
typedef struct {
    /**
     * `sizeof(electra_encode_params)`, set by `electra_encode_default_params`.
     */
    uint32_t struct_size;
    /**
     * 1 (the default): add the special tokens (`[CLS] a [SEP]`, `[CLS] a [SEP] b [SEP]`).
     */
    int32_t add_special_tokens;
    /**
     * Cut each row to at most this many tokens, special tokens included (pairs: the longer text
     * first). 0 (the default): no limit.
     */
    uint32_t max_length;
} electra_encode_params;

/**
 * What a tokenizer holds, filled by `electra_tokenizer_get_info`. Set `struct_size` to
 * `sizeof(electra_tokenizer_info)` first.
 */
typedef struct {
    /**
     * Set by the caller: `sizeof(electra_tokenizer_info)`.
     */
    uint32_t struct_size;
    /**
     * Number of ids (the model's vocabulary must be at least this).
     */
    uint32_t vocab_size;
    /**
     * `[PAD]`.
     */
    int32_t pad_id;
    /**
     * `[UNK]`.
     */
    int32_t unk_id;
    /**
     * `[CLS]`.
     */
    int32_t cls_id;
    /**
     * `[SEP]`.
     */
    int32_t sep_id;
    /**
     * `[MASK]`.
     */
    int32_t mask_id;
} electra_tokenizer_info;

/**
 * A host's sum all-reduce: replace the `count` floats at `data` by their element-wise sum over
 * all ranks, in place, and return 0 (any other value fails the step with
 * `ELECTRA_ERR_DISTRIBUTED` on this rank). Every rank must get the same bits back. It runs on
 * the thread that called into the trainer and must not unwind (no C++ exception, no Go panic)
 * across it.
 */
typedef int32_t (*electra_allreduce_fn)(float *data, size_t count, void *user_data);

/**
 * The host CPU (always present).
 */
#define ELECTRA_DEVICE_CPU 0

/**
 * NVIDIA GPUs through CUDA (needs a library built with the `cuda` feature and a driver).
 */
#define ELECTRA_DEVICE_CUDA 1

/**
 * Success.
 */
#define ELECTRA_OK 0

/**
 * An argument is out of range or inconsistent (ids outside the vocabulary, empty batch,
 * bad options JSON, invalid config).
 */
#define ELECTRA_ERR_INVALID_ARGUMENT 1

/**
 * A required pointer argument was NULL.
 */
#define ELECTRA_ERR_NULL_POINTER 2

/**
 * A handle is NULL, already freed or of the wrong kind, or is a session, trainer or fine-tuner
 * created before `fork()` used in the child.
 */
#define ELECTRA_ERR_INVALID_HANDLE 3

/**
 * A file could not be read or written.
 */
#define ELECTRA_ERR_IO 4

/**
 * A file is corrupt, truncated, or lacks a tensor / has a wrong shape or dtype.
 */
#define ELECTRA_ERR_FORMAT 5

/**
 * Array lengths that must agree do not.
 */
#define ELECTRA_ERR_SHAPE 6

/**
 * An output buffer is smaller than the result; nothing was written.
 */
#define ELECTRA_ERR_BUFFER_TOO_SMALL 7

/**
 * An allocation failed.
 */
#define ELECTRA_ERR_OUT_OF_MEMORY 8

/**
 * The call was cancelled; state is consistent.
 */
#define ELECTRA_ERR_CANCELLED 9

/**
 * The model lacks what the call needs (e.g. generator logits from a lone discriminator).
 */
#define ELECTRA_ERR_UNSUPPORTED 10

/**
 * A loss or gradient was NaN or infinite; nothing was updated.
 */
#define ELECTRA_ERR_NUMERIC 11

/**
 * The CUDA backend failed or is not compiled in.
 */
#define ELECTRA_ERR_CUDA 12

/**
 * An internal invariant failed (a bug).
 */
#define ELECTRA_ERR_INTERNAL 13

/**
 * A panic was caught at the boundary (a bug); the handle involved should be freed.
 */
#define ELECTRA_ERR_PANIC 14

/**
 * Data-parallel training: another rank failed, the all-reduce failed or timed out, or the ranks
 * disagree; the step changed nothing on this rank.
 */
#define ELECTRA_ERR_DISTRIBUTED 15

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The ABI version this library was built with (compare with `ELECTRA_ABI_VERSION`).
 */
uint32_t electra_abi_version(void);

/**
 * The library version, e.g. "0.1.0" (static storage, never freed).
 */
const char *electra_version(void);

/**
 * Copies the calling thread's last error message into `buf` (NUL-terminated, truncated to
 * `cap` bytes including the NUL, never inside a UTF-8 character) and returns the message's
 * full length in bytes, without the NUL. `buf` may be NULL when `cap` is 0, to query the
 * length. The message describes the most recent failed call on this thread; successful calls
 * leave it unchanged.
 *
 * # Safety
 * `buf` must be NULL or point to `cap` writable bytes.
 */
size_t electra_last_error_message(char *buf, size_t cap);

/**
 * A static, human-readable name for a status code ("ok", "invalid argument", ...).
 */
const char *electra_status_str(electra_status status);

/**
 * Writes to `*count` how many devices of `kind` this library can use: 1 for
 * `ELECTRA_DEVICE_CPU`, the driver's device count for `ELECTRA_DEVICE_CUDA`. When the library
 * was built without CUDA or the CUDA driver cannot be loaded, returns `ELECTRA_ERR_CUDA` with a
 * message saying which; `*count` is 0 on every error, so a host may also just read it.
 *
 * # Safety
 * `count` must be NULL (an error) or valid for a write.
 */
electra_status electra_device_count(electra_device_kind kind, size_t *count);

/**
 * Starts fine-tuning from `model_dir`: any checkpoint with a discriminator (its encoder is
 * kept and a fresh classification head for `num_labels` labels, named LABEL_0 ..
 * LABEL_{num_labels-1}, is added) or an existing classifier, continued with its labels and
 * their ids as its config.json `id2label` says: pass 0 or its label count, or a larger count to
 * add labels (new ids after the existing ones, named LABEL_i; the head grows by rows
 * initialised as a fresh head's). A classifier has 2 to 1024 labels of at most 128 bytes each.
 * `options_json` is NULL or a JSON object
 * with keys learning_rate (left out: by the encoder's width, 3e-4 up to 256, 1e-4 up to 768,
 * 5e-5 above, the paper's ELECTRA-Small, Base and Large rates), warmup_steps, total_steps,
 * weight_decay, layerwise_lr_decay,
 * adam_epsilon, bias_correction, max_grad_norm, seed, threads (host worker threads: 0, the default, the process-wide
 * shared pool sized by `electra_set_default_threads`; 1 the calling thread only, with no worker
 * thread; N >= 2 N workers, the shared pool when that is its size, else a pool of the fine-tuner's own;
 * results do not depend on it), own_pool (true: a pool of its own of `threads` workers, 0 = one
 * per core; default false), device (`"cpu"`, the default;
 * `"cuda"` or `"cuda:N"`: a device not compiled in or not present is `ELECTRA_ERR_CUDA`),
 * max_memory_bytes (a memory budget, 0 = none beyond the machine's memory; over it creation or
 * a step is `ELECTRA_ERR_OUT_OF_MEMORY` before anything is allocated), simd (CPU kernel cap:
 * `"best"`, the default, `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`; left out:
 * `ELECTRA_SIMD` when set), tf32 (CUDA TF32 products, default false; left out:
 * `ELECTRA_CUDA_TF32` when set) and dropout (`true`, the default: config.json's probabilities,
 * with `classifier_dropout` or else hidden_dropout_prob in the head, as HF trains; `false`:
 * none; a number in [0, 1): all of them at that probability) and pool (what the head reads:
 * `"cls"`, the first token's state as HF `ElectraForSequenceClassification`, or `"mean"`, the
 * mean of the non-padding tokens' states, saved as `"classifier_pooling": "mean"` in config.json;
 * left out: a classifier's own pooling, `"cls"` for a new head; continuing a classifier with the
 * other pooling is `ELECTRA_ERR_INVALID_ARGUMENT`. JSON only: `electra_finetuner_params` keeps
 * its version-1 layout).
 *
 * # Safety
 * Strings must be NUL-terminated (options_json may be NULL); `out` valid.
 */
electra_status electra_finetuner_new(const char *model_dir,
                                     size_t num_labels,
                                     const char *options_json,
                                     electra_finetuner **out);

/**
 * One fine-tuning step on `batch` rows of `seq_len` ids with one label (0..num_labels-1) per
 * row. `attention_mask`, `token_type_ids` and `stats` may be NULL. Bad input leaves the
 * weights untouched.
 *
 * # Safety
 * Arrays must hold `batch*seq_len` elements (labels: `batch`); `stats` NULL or valid.
 */
electra_status electra_finetuner_step(electra_finetuner *f,
                                      const int32_t *input_ids,
                                      const int32_t *attention_mask,
                                      const int32_t *token_type_ids,
                                      size_t batch,
                                      size_t seq_len,
                                      const int32_t *labels,
                                      electra_finetune_stats *stats);

/**
 * Saves the classifier as an HF `ElectraForSequenceClassification` directory (loadable by
 * `transformers` and by `electra_model_load`), under the save contract (SAVES above).
 *
 * # Safety
 * `f` must be live; `dir` NUL-terminated.
 */
electra_status electra_finetuner_save(electra_finetuner *f, const char *dir);

/**
 * Frees a fine-tuner. NULL, an already freed fine-tuner and any other value are harmless
 * no-ops. A step running in another thread finishes normally; the memory is released when it
 * returns.
 *
 * # Safety
 * None: `f` is looked up in the registry of live handles, never dereferenced.
 */
void electra_finetuner_free(electra_finetuner *f);

/**
 * Classification logits: writes `batch*num_labels` floats, row-major, for a model with a
 * classification head (`electra_model_info.num_labels` > 0); else `ELECTRA_ERR_UNSUPPORTED`.
 * Same argument rules as `electra_session_discriminate`.
 *
 * # Safety
 * As `electra_session_discriminate`.
 */
electra_status electra_session_classify(electra_session *s,
                                        const int32_t *input_ids,
                                        const int32_t *attention_mask,
                                        const int32_t *token_type_ids,
                                        size_t batch,
                                        size_t seq_len,
                                        float *out,
                                        size_t out_len);

/**
 * Loads a model from `path`: an HF directory (config.json + model.safetensors of an
 * ElectraForPreTraining or ElectraForMaskedLM), or the pair layout (`path/discriminator`,
 * `path/generator`). On success `*out` owns the model; on failure `*out` is NULL.
 *
 * # Safety
 * `path` must be a NUL-terminated string; `out` a valid pointer.
 */
electra_status electra_model_load(const char *path, electra_model **out);

/**
 * Loads a model as `electra_model_load` does, with options as a JSON object (NULL or "":
 * the defaults). Keys: `"allow_unused_tensors"` (bool, default false): accept files holding
 * tensors the config does not account for (by default an `ELECTRA_ERR_FORMAT` listing them,
 * e.g. a config of 1 layer over a 2-layer file). `"quantize"` (`"f32"`, the default, or
 * `"int8"`): quantize an f32 model as it loads, as `electra quantize` does (every encoder and
 * head Linear weight and the word embeddings int8 per output channel; activations quantized per
 * row at run time; about 2.2-2.6x faster on the CPU, within ~1% of f32 outputs); an int8 model
 * directory loads as int8 either way. Unknown keys are `ELECTRA_ERR_INVALID_ARGUMENT`.
 * On failure `*out` is NULL.
 *
 * Memory: the safetensors header is validated first (offsets, sizes, dtypes against the file's
 * length), then each tensor is read with positioned reads of at most 1 MiB straight into its
 * place in the model's one parameter buffer, so loading an f32 model peaks at about the file's
 * size (not twice it); with `"quantize": "int8"` the weights to quantize are read and quantized a
 * block of rows at a time and never held in f32, so the peak is about the int8 model's size.
 * The first session call on a device builds that device's inference copy of the weights (packed
 * for the CPU kernels, or on the GPU), counted on top. The file is read, never memory-mapped: a
 * file truncated or rewritten under a mapping would raise SIGBUS in the host's process, while a
 * file changed during a read is at worst `ELECTRA_ERR_FORMAT` (it ended early, or a value is not
 * finite: every tensor is checked) or a model of other finite weights, and a file replaced by a
 * rename while loading is not seen at all (the open file is read).
 *
 * # Safety
 * `path` must be a NUL-terminated string; `options_json` NULL or a NUL-terminated string;
 * `out` a valid pointer.
 */
electra_status electra_model_load_with_options(const char *path,
                                               const char *options_json,
                                               electra_model **out);

/**
 * Loads one HF tower (an ElectraForPreTraining, ElectraForMaskedLM or
 * ElectraForSequenceClassification checkpoint, f32 or int8) from the bytes of its `config.json`
 * (`config_json`, `config_len` bytes, UTF-8, not NUL-terminated) and of its `model.safetensors`
 * (`weights`, `weights_len` bytes) held in the caller's memory, as an app holds a bundled asset.
 * `options_json` as for `electra_model_load_with_options`. Both buffers are checked as strictly
 * as files are (size caps, the safetensors header's offsets and sizes against `weights_len`
 * before anything is allocated, names, shapes, finite values): an empty, truncated or corrupt
 * buffer is `ELECTRA_ERR_FORMAT`.
 *
 * The weights are COPIED into the model's own parameter buffer, once, tensor by tensor: the
 * model's flat parameter layout orders (and converts) tensors differently from the file, so the
 * caller's buffer could not be used in place, and owning the copy frees the caller from keeping
 * the buffer alive: both buffers may be freed or reused as soon as this returns. Peak memory is
 * the caller's buffer plus the model (f32: about the size of `weights`; with `"quantize": "int8"`
 * the f32 tensors to quantize are never copied, only their int8 form).
 *
 * On success `*out` owns the model; on failure `*out` is NULL. A NULL `config_json`, `weights`
 * or `out` is `ELECTRA_ERR_NULL_POINTER` (whatever the lengths).
 *
 * # Safety
 * `config_json` must point to `config_len` readable bytes and `weights` to `weights_len`
 * readable bytes, both unchanged for the duration of the call; `options_json` NULL or a
 * NUL-terminated string; `out` a valid pointer.
 */
electra_status electra_model_load_from_memory(const uint8_t *config_json,
                                              size_t config_len,
                                              const uint8_t *weights,
                                              size_t weights_len,
                                              const char *options_json,
                                              electra_model **out);

/**
 * Frees a model. NULL, an already freed model and any other value are harmless no-ops.
 * Sessions created from it stay valid (they share the weights).
 *
 * # Safety
 * None: `m` is looked up in the registry of live handles, never dereferenced.
 */
void electra_model_free(electra_model *m);

/**
 * Fills `info` with the model's dimensions (see `electra_model_info`).
 *
 * # Safety
 * `info` must point to at least `info->struct_size` writable bytes.
 */
electra_status electra_model_get_info(const electra_model *m, electra_model_info *info);

/**
 * Saves the model in the pair layout under `dir` (`dir/discriminator`, `dir/generator`), each
 * an HF directory loadable by `transformers` and by `electra_model_load`, under the save
 * contract (SAVES above: nothing in `dir` that the save did not write is touched). An int8 model is saved in the int8 format (the directory `electra quantize`
 * writes), which `electra_model_load` reads and `transformers` does not; its f32 weights are
 * gone, so nothing exports it as an f32 checkpoint.
 *
 * # Safety
 * `dir` must be NULL or a NUL-terminated string (`m` is looked up, never dereferenced).
 */
electra_status electra_model_save(const electra_model *m,
                                  const char *dir);

/**
 * The defaults of `electra_session_params` (those of `electra_session_new`).
 * Returned by value at this version's size: a later version that appends fields keeps this
 * function and adds another, so a caller never receives more than it declared.
 */
electra_session_params electra_session_default_params(void);

/**
 * The defaults of `electra_load_params` (those of `electra_model_load`).
 * Returned by value at this version's size: a later version that appends fields keeps this
 * function and adds another, so a caller never receives more than it declared.
 */
electra_load_params electra_load_default_params(void);

/**
 * The defaults of `electra_trainer_params` (those of `electra_trainer_new` with NULL options).
 * Returned by value at this version's size: a later version that appends fields keeps this
 * function and adds another, so a caller never receives more than it declared.
 */
electra_trainer_params electra_trainer_default_params(void);

/**
 * The defaults of `electra_finetuner_params` (those of `electra_finetuner_new` with NULL
 * options).
 * Returned by value at this version's size: a later version that appends fields keeps this
 * function and adds another, so a caller never receives more than it declared.
 */
electra_finetuner_params electra_finetuner_default_params(void);

/**
 * `electra_session_new_with_options` with typed params (NULL: the defaults). A `struct_size`
 * below 4 or above this library's is `ELECTRA_ERR_INVALID_ARGUMENT`; bad values are refused as
 * their JSON keys are.
 *
 * # Safety
 * `m` a live model; `params` NULL or valid for `params->struct_size` bytes with its strings NULL
 * or NUL-terminated; `out` valid.
 */
electra_status electra_session_new_with_params(const electra_model *m,
                                               const electra_session_params *params,
                                               electra_session **out);

/**
 * `electra_model_load_with_options` with typed params (NULL: the defaults).
 *
 * # Safety
 * `path` a NUL-terminated string; `params` as `electra_session_new_with_params`; `out` valid.
 */
electra_status electra_model_load_with_params(const char *path,
                                              const electra_load_params *params,
                                              electra_model **out);

/**
 * `electra_trainer_new` with typed params (NULL: the defaults).
 *
 * # Safety
 * `init` a NUL-terminated string; `params` as `electra_session_new_with_params`; `out` valid.
 */
electra_status electra_trainer_new_with_params(const char *init,
                                               const electra_trainer_params *params,
                                               electra_trainer **out);

/**
 * `electra_finetuner_new` with typed params (NULL: the defaults).
 *
 * # Safety
 * `model_dir` a NUL-terminated string; `params` as `electra_session_new_with_params`; `out`
 * valid.
 */
electra_status electra_finetuner_new_with_params(const char *model_dir,
                                                 size_t num_labels,
                                                 const electra_finetuner_params *params,
                                                 electra_finetuner **out);

/**
 * Creates an inference session over `m` on the CPU, one worker thread per core (as
 * `electra_session_new_with_options(m, NULL, out)`). The session keeps the weights alive, so `m`
 * may be freed first. On failure `*out` is NULL. The first call on any session of a model builds
 * a copy of its dense-layer weights in the layout the matrix kernel reads fastest (about the
 * size of the model again, shared by all its sessions on that device).
 *
 * # Safety
 * `m` must be a live model; `out` a valid pointer.
 */
electra_status electra_session_new(const electra_model *m, electra_session **out);

/**
 * Creates an inference session over `m` with options. `options_json` is NULL (the defaults) or
 * a JSON object with the keys `device` (`"cpu"`, the default; `"cuda"` or `"cuda:N"`),
 * `threads` (host worker threads: 0, the default, the process-wide shared pool, sized by
 * `electra_set_default_threads`, one per core unless set; 1 the calling thread only, with no
 * worker thread; N >= 2 N workers, the shared pool when that is its size, else a pool of the
 * session's own; results do not depend on it), `own_pool` (true: a pool of the session's own
 * of `threads` workers, 0 = one per core, never the shared one; default false),
 * `max_memory_bytes` (a memory budget, 0 = none beyond the machine's memory, the default:
 * a call whose model plus activations would exceed it is `ELECTRA_ERR_OUT_OF_MEMORY`, with the
 * estimate and the budget in the message, before anything is allocated), `simd` (CPU: a cap on
 * the kernels' vector width, `"best"`, the default, `"avx512"`, `"avx2"`, `"neon"` or
 * `"scalar"`; results differ by rounding at most), `f32_kernel` (CPU: f32 inference's products,
 * `"packed"`, the default, or `"gemm"`) and `tf32` (CUDA: TF32 tensor-core products, default
 * false). `simd`, `f32_kernel` and `tf32` left out (or null) take `ELECTRA_SIMD`,
 * `ELECTRA_F32_KERNEL` or `ELECTRA_CUDA_TF32` from the environment when set.
 * A device that is not compiled in or not present is `ELECTRA_ERR_CUDA` with a message saying
 * which; unknown keys and bad values are `ELECTRA_ERR_INVALID_ARGUMENT`. Otherwise as
 * `electra_session_new`.
 *
 * # Safety
 * `m` must be a live model; `options_json` NULL or a NUL-terminated string; `out` valid.
 */
electra_status electra_session_new_with_options(const electra_model *m,
                                                const char *options_json,
                                                electra_session **out);

/**
 * Frees a session. NULL, an already freed session and any other value are harmless no-ops.
 * A call running on the session in another thread finishes normally; the session's memory is
 * released when it returns.
 *
 * # Safety
 * None: `s` is looked up in the registry of live handles, never dereferenced.
 */
void electra_session_free(electra_session *s);

/**
 * Replaced-token detection: writes `batch*seq_len` raw logits (row-major; > 0 means
 * "replaced") into `out`. `attention_mask` (1 = token, 0 = padding) and `token_type_ids` may be
 * NULL (all ones, all zeros). An `out_len` below `batch*seq_len` is
 * `ELECTRA_ERR_BUFFER_TOO_SMALL` and nothing is written.
 *
 * # Safety
 * Input arrays must hold `batch*seq_len` elements (or be NULL where allowed); `out` must hold
 * `out_len` floats.
 */
electra_status electra_session_discriminate(electra_session *s,
                                            const int32_t *input_ids,
                                            const int32_t *attention_mask,
                                            const int32_t *token_type_ids,
                                            size_t batch,
                                            size_t seq_len,
                                            float *out,
                                            size_t out_len);

/**
 * Generator (masked-LM) logits: writes `batch*seq_len*vocab_size` floats, row-major.
 * Same arguments and rules as `electra_session_discriminate`; a model without a generator
 * returns `ELECTRA_ERR_UNSUPPORTED`.
 *
 * # Safety
 * As `electra_session_discriminate`.
 */
electra_status electra_session_generator_logits(electra_session *s,
                                                const int32_t *input_ids,
                                                const int32_t *attention_mask,
                                                const int32_t *token_type_ids,
                                                size_t batch,
                                                size_t seq_len,
                                                float *out,
                                                size_t out_len);

/**
 * The discriminator's last hidden states: writes `batch*seq_len*hidden_size` floats,
 * row-major. Same arguments and rules as `electra_session_discriminate`.
 *
 * # Safety
 * As `electra_session_discriminate`.
 */
electra_status electra_session_hidden_states(electra_session *s,
                                             const int32_t *input_ids,
                                             const int32_t *attention_mask,
                                             const int32_t *token_type_ids,
                                             size_t batch,
                                             size_t seq_len,
                                             float *out,
                                             size_t out_len);

/**
 * The defaults of `electra_text_params`: batches of 32, the model's length limit, mean pooling,
 * not normalised.
 * Returned by value at this version's size: a later version that appends fields keeps this
 * function and adds another, so a caller never receives more than it declared.
 */
electra_text_params electra_text_default_params(void);

/**
 * Sentence embeddings of `n` texts: writes `n * hidden_size` floats (`electra_model_info`'s
 * `hidden_size`), row-major, pooled from the discriminator's (or a classifier's) last hidden
 * states as `params` says. `t` NULL uses the model's own tokenizer (`electra_model_tokenizer`).
 * Texts are tokenized as HF does (`[CLS] text [SEP]`), cut to `params->max_length`, and run in
 * padded batches sorted by length: each embedding equals that text's alone to rounding
 * (1e-6). An `out_len` below `n * hidden_size` is `ELECTRA_ERR_BUFFER_TOO_SMALL`, checked
 * before any work; on any error nothing is written.
 *
 * # Safety
 * `texts` must hold `n` `electra_text`s; `out` `out_len` floats; `params` NULL or valid.
 */
electra_status electra_session_embed_texts(electra_session *s,
                                           const electra_tokenizer *t,
                                           const electra_text *texts,
                                           size_t n,
                                           const electra_text_params *params,
                                           float *out,
                                           size_t out_len);

/**
 * Class probabilities of `n` texts (with `pairs` non-NULL: text pairs, as sentence-pair tasks
 * read them) from a fine-tuned classifier: writes `n * num_labels` floats (`electra_model_info`'s
 * `num_labels`), row-major; each row is a softmax (with one label: the raw regression output).
 * Label `i`'s name is `electra_model_label_name(m, i, ...)`. Otherwise as
 * `electra_session_embed_texts`; a model without a classifier is `ELECTRA_ERR_UNSUPPORTED`.
 *
 * # Safety
 * `texts` (and `pairs` when non-NULL) must hold `n` `electra_text`s; `out` `out_len` floats.
 */
electra_status electra_session_classify_texts(electra_session *s,
                                              const electra_tokenizer *t,
                                              const electra_text *texts,
                                              const electra_text *pairs,
                                              size_t n,
                                              const electra_text_params *params,
                                              float *out,
                                              size_t out_len);

/**
 * Replaced-token detection on one text: for each word (as BERT splits words: at whitespace and
 * punctuation) its byte span and the probability that it was replaced, in text order, into
 * `out` (`cap` entries); `*n_words` gets their number. Ask for it first with `out` NULL and
 * `cap` 0 (status OK; that tokenizes only, without running the model). A `cap` below `*n_words` is `ELECTRA_ERR_BUFFER_TOO_SMALL` with
 * `*n_words` set and nothing written. Words past `params->max_length` tokens are not scored.
 *
 * # Safety
 * `text` NULL (when `len` is 0) or `len` readable bytes; `out` NULL or `cap` entries; `n_words`
 * a valid pointer.
 */
electra_status electra_session_detect_text(electra_session *s,
                                           const electra_tokenizer *t,
                                           const char *text,
                                           size_t len,
                                           const electra_text_params *params,
                                           electra_word_score *out,
                                           size_t cap,
                                           size_t *n_words);

/**
 * Fill-mask on one text holding `[MASK]` tokens: the `top_k` most likely tokens at each mask,
 * best first, from the generator, into `out` (`n_masks * top_k` entries, mask by mask in text
 * order); `*n_masks` gets the number of masks. Ask for it first with `out` NULL and `cap` 0
 * (that tokenizes only).
 * A text without `[MASK]` is `ELECTRA_ERR_INVALID_ARGUMENT`; a model without a generator
 * `ELECTRA_ERR_UNSUPPORTED`; a `cap` below `n_masks * top_k` `ELECTRA_ERR_BUFFER_TOO_SMALL`
 * (with `*n_masks` set, nothing written). `top_k` above the vocabulary size is cut to it.
 *
 * # Safety
 * As `electra_session_detect_text`.
 */
electra_status electra_session_fill_mask_text(electra_session *s,
                                              const electra_tokenizer *t,
                                              const char *text,
                                              size_t len,
                                              size_t top_k,
                                              const electra_text_params *params,
                                              electra_token_score *out,
                                              size_t cap,
                                              size_t *n_masks);

/**
 * The name of label `i` of a classifier (config.json's `id2label`; `LABEL_<i>` where it has
 * none) into `buf`, NUL-terminated, `*len` its length (as `electra_tokenizer_decode` writes
 * strings). A model without a classifier is `ELECTRA_ERR_UNSUPPORTED`; `i` at or past
 * `num_labels` `ELECTRA_ERR_INVALID_ARGUMENT`.
 *
 * # Safety
 * `buf` NULL or `cap` writable bytes; `len` a valid pointer.
 */
electra_status electra_model_label_name(const electra_model *m,
                                        size_t i,
                                        char *buf,
                                        size_t cap,
                                        size_t *len);

/**
 * `electra_finetuner_step` on text: `n` texts (with `pairs` non-NULL, text pairs) and their `n`
 * labels, tokenized as `electra_session_classify_texts` does (cut to `params->max_length`, 0:
 * the model's positions; `batch_size`, `pooling` and `normalize` are not used), as one batch
 * padded to its longest text. `t` NULL uses the tokenizer beside the model the fine-tuner
 * started from (which `electra_finetuner_save` saves with the classifier); without one the
 * call is `ELECTRA_ERR_UNSUPPORTED`. Bad input leaves the weights untouched.
 *
 * # Safety
 * `texts` (and `pairs` when non-NULL) must hold `n` `electra_text`s; `labels` `n` labels;
 * `params` NULL or valid; `stats` NULL or valid for `stats->struct_size` bytes.
 */
electra_status electra_finetuner_step_texts(electra_finetuner *f,
                                            const electra_tokenizer *t,
                                            const electra_text *texts,
                                            const electra_text *pairs,
                                            size_t n,
                                            const int32_t *labels,
                                            const electra_text_params *params,
                                            electra_finetune_stats *stats);

/**
 * `electra_trainer_step` on text: `n` texts, each `[CLS] text [SEP]` cut to the trainer's
 * `max_seq_len` (or `params->max_length` when smaller and set), as one batch padded to its
 * longest text; the trainer masks and samples as for ids. `t` is required (a trainer made from a
 * preset has no tokenizer; its vocabulary must fit the model's). Otherwise as
 * `electra_trainer_step`.
 *
 * # Safety
 * `texts` must hold `n` `electra_text`s; `params` NULL or valid; `stats` NULL or valid for
 * `stats->struct_size` bytes.
 */
electra_status electra_trainer_step_texts(electra_trainer *tr,
                                          const electra_tokenizer *t,
                                          const electra_text *texts,
                                          size_t n,
                                          const electra_text_params *params,
                                          electra_step_stats *stats);

/**
 * Sets the size of the shared CPU thread pool: `n` worker threads, 0 = one per core (the
 * default; `RAYON_NUM_THREADS` when set). Call it before creating the first session, trainer or
 * fine-tuner with `threads` 0 (the default); until one uses the shared pool, a later call
 * replaces the size. From then on, a call with the size in use succeeds and any other size is
 * `ELECTRA_ERR_INVALID_ARGUMENT` (the message gives both sizes): the pool never resizes under
 * handles using it. With size 1, handles using the shared pool run on their calling thread and
 * no worker thread starts (and the size is fixed all the same). `n` above 1024 is `ELECTRA_ERR_INVALID_ARGUMENT`. After fork() the
 * child starts a pool of its own, of the size last set.
 */
electra_status electra_set_default_threads(size_t n);

/**
 * Writes to `*out` the size of the shared CPU thread pool: the number of threads it runs, or
 * will start with (see `electra_set_default_threads`).
 *
 * # Safety
 * `out` must be NULL (an error) or valid for a write.
 */
electra_status electra_default_threads(size_t *out);

/**
 * The defaults of `electra_encode_params`: special tokens added, no length limit.
 * Returned by value at this version's size: a later version that appends fields keeps this
 * function and adds another, so a caller never receives more than it declared.
 */
electra_encode_params electra_encode_default_params(void);

/**
 * Loads a tokenizer from `path`: a model directory (its `tokenizer.json`, else `vocab.txt`; in
 * the pair layout, `discriminator/`'s or `generator/`'s), an HF `tokenizer.json` (any file
 * ending in `.json`), or a BERT `vocab.txt` (any other file; built as BERT-uncased WordPiece).
 * A tokenizer.json's own truncation and padding are ignored (the encode call's params decide).
 * On failure `*out` is NULL: `ELECTRA_ERR_IO` for an unreadable path, `ELECTRA_ERR_FORMAT` for a
 * file that is not a tokenizer or lacks `[PAD] [UNK] [CLS] [SEP] [MASK]`.
 *
 * # Safety
 * `path` must be NULL or a NUL-terminated string; `out` a valid pointer.
 */
electra_status electra_tokenizer_load(const char *path, electra_tokenizer **out);

/**
 * Loads a tokenizer from the bytes of an HF `tokenizer.json` held in memory (an app's asset),
 * copied: the buffer may be freed when the call returns. Errors as `electra_tokenizer_load`.
 *
 * # Safety
 * `json` must be NULL or hold `len` readable bytes; `out` a valid pointer.
 */
electra_status electra_tokenizer_load_from_memory(const uint8_t *json,
                                                  size_t len,
                                                  electra_tokenizer **out);

/**
 * The tokenizer saved beside a model's weights (the directory `electra_model_load` read). A
 * model without one (or loaded from memory) is `ELECTRA_ERR_UNSUPPORTED`; one whose tokenizer
 * could not be read, or has more ids than the model's vocabulary, is `ELECTRA_ERR_UNSUPPORTED`
 * with the reason. The tokenizer is shared with the model: freeing either leaves the other
 * valid. Free it with `electra_tokenizer_free`.
 *
 * # Safety
 * `out` must be a valid pointer (`m` is looked up, never dereferenced).
 */
electra_status electra_model_tokenizer(const electra_model *m, electra_tokenizer **out);

/**
 * Frees a tokenizer. NULL, an already freed tokenizer and any other value are harmless no-ops.
 *
 * # Safety
 * None: `t` is looked up in the registry of live handles, never dereferenced.
 */
void electra_tokenizer_free(electra_tokenizer *t);

/**
 * Fills `info` with the tokenizer's vocabulary size and special ids.
 *
 * # Safety
 * `info` must point to at least `info->struct_size` writable bytes.
 */
electra_status electra_tokenizer_get_info(const electra_tokenizer *t, electra_tokenizer_info *info);

/**
 * Encodes `n` texts (with `pairs` non-NULL: `n` text pairs, two segments each) into
 * `n * seq_len` token ids, row-major, padded with `[PAD]` to the longest row; `*seq_len` gets
 * that row length. `attention_mask` (1 = token, 0 = padding), `token_type_ids` (0 = first
 * text, 1 = second) and `offsets` (2 per token: start and end byte offsets into that token's
 * text; 0, 0 for special and padding tokens) are filled when non-NULL. The ids are HF
 * `tokenizers`' for the same tokenizer.json with truncation to `params->max_length` and padding
 * to the longest. `params` NULL: `electra_encode_default_params()`.
 *
 * `cap` is the number of elements each array holds (`offsets`: `2*cap`). Ask for the size first
 * with `input_ids` NULL and `cap` 0 (status OK, only `*seq_len` written; the texts are
 * tokenized twice that way), or pass arrays of `n * max_length` when a limit is set. A `cap`
 * below `n * seq_len` is `ELECTRA_ERR_BUFFER_TOO_SMALL` with `*seq_len` set and nothing else
 * written. Texts that are not UTF-8 are `ELECTRA_ERR_INVALID_ARGUMENT` naming the text and byte.
 *
 * # Safety
 * `texts` (and `pairs` when non-NULL) must hold `n` `electra_text`s whose bytes stay alive for
 * the call; each non-NULL output array must hold `cap` elements (`offsets` `2*cap`); `seq_len`
 * must be a valid pointer; `params` NULL or valid for `params->struct_size` bytes.
 */
electra_status electra_tokenizer_encode(const electra_tokenizer *t,
                                        const electra_text *texts,
                                        const electra_text *pairs,
                                        size_t n,
                                        const electra_encode_params *params,
                                        int32_t *input_ids,
                                        int32_t *attention_mask,
                                        int32_t *token_type_ids,
                                        uint32_t *offsets,
                                        size_t cap,
                                        size_t *seq_len);

/**
 * The text of `n` token ids into `buf` (NUL-terminated; `*len` = its length without the NUL):
 * WordPiece pieces glued, as HF `decode` with `clean_up_tokenization_spaces`. Special tokens
 * are left out when `skip_special_tokens` is nonzero. An id outside the vocabulary is
 * `ELECTRA_ERR_INVALID_ARGUMENT`; a `cap` below `*len + 1` is `ELECTRA_ERR_BUFFER_TOO_SMALL`
 * with `*len` set (`buf` NULL with `cap` 0 asks the length).
 *
 * # Safety
 * `ids` must hold `n` ids (may be NULL when `n` is 0); `buf` NULL or `cap` writable bytes; `len`
 * a valid pointer.
 */
electra_status electra_tokenizer_decode(const electra_tokenizer *t,
                                        const int32_t *ids,
                                        size_t n,
                                        int32_t skip_special_tokens,
                                        char *buf,
                                        size_t cap,
                                        size_t *len);

/**
 * The id of a vocabulary entry (such as `"##ing"` or `"[MASK]"`, not text to tokenize) in
 * `*id`, or -1 when the vocabulary has no such entry (status OK).
 *
 * # Safety
 * `token` must be NULL or hold `len` readable bytes; `id` a valid pointer.
 */
electra_status electra_tokenizer_token_to_id(const electra_tokenizer *t,
                                             const char *token,
                                             size_t len,
                                             int32_t *id);

/**
 * The vocabulary entry of `id` into `buf` (NUL-terminated, `*len` its length), as
 * `electra_tokenizer_decode` writes strings. An id outside the vocabulary is
 * `ELECTRA_ERR_INVALID_ARGUMENT`.
 *
 * # Safety
 * `buf` NULL or `cap` writable bytes; `len` a valid pointer.
 */
electra_status electra_tokenizer_id_to_token(const electra_tokenizer *t,
                                             int32_t id,
                                             char *buf,
                                             size_t cap,
                                             size_t *len);

/**
 * Creates a trainer. `init` is a preset name (`tiny`, `small`, `base`, `large`) or a directory
 * (the pair layout, or a lone discriminator whose generator is built by the paper's size rule).
 * `options_json` is NULL or a JSON object; unknown keys and bad values are
 * `ELECTRA_ERR_INVALID_ARGUMENT` with a message naming them. Keys: learning_rate,
 * warmup_steps, total_steps, weight_decay, adam_epsilon, adam_beta1, adam_beta2,
 * bias_correction, max_grad_norm, mask_prob, gen_weight, disc_weight, temperature, objective
 * ("electra" or "mlm"), generator_hidden_fraction, vocab_size, max_seq_len, mask_token_id,
 * special_token_ids, seed, threads (host worker threads: 0, the default, the process-wide
 * shared pool sized by `electra_set_default_threads`; 1 the calling thread only, with no worker
 * thread; N >= 2 N workers, the shared pool when that is its size, else a pool of the trainer's own;
 * results do not depend on it), own_pool (true: a pool of its own of `threads` workers, 0 = one
 * per core; default false), device (`"cpu"`, the default; `"cuda"` or `"cuda:N"`: a
 * device not compiled in or not present is `ELECTRA_ERR_CUDA`), max_memory_bytes (a memory
 * budget, 0 = none beyond the machine's memory: weights, gradients and Adam moments over it
 * fail creation, and those plus a batch's activations fail the step, with
 * `ELECTRA_ERR_OUT_OF_MEMORY` before anything is allocated), simd (CPU kernel cap: `"best"`,
 * the default, `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`; left out: `ELECTRA_SIMD` when
 * set), tf32 (CUDA TF32 products, default false; left out: `ELECTRA_CUDA_TF32` when set),
 * dropout (`true`, the default: config.json's hidden_dropout_prob and
 * attention_probs_dropout_prob, as HF trains; `false`: none; a number in [0, 1): every
 * dropout at that probability; masks are seeded and counter-based, so steps stay
 * bit-identical for any thread count and on resume), embedding_sharing (`"full"`, the paper's:
 * one set of embedding tables for generator and discriminator; `"disentangled"`, DeBERTa-V3's:
 * the discriminator's tables are the generator's plus a delta that alone learns from
 * detection, exported folded; `"none"`: each its own; left out: full for a pair built from a
 * preset or a discriminator, a loaded pair as its files are; JSON only,
 * `electra_trainer_params` keeps its version-1 layout), disc_mlm_weight (the hybrid
 * objective: weight of a masked-LM term on the discriminator's own states, through a head kept
 * in the trainer's checkpoints but not in the exported discriminator; default 0, the paper's
 * objective; JSON only), disc_label_smoothing (ε in [0, 1): replaced-token detection scored
 * against ε/2 and 1 − ε/2; default 0, the paper's; JSON only), rtd_head (`"plain"`, HF's
 * detection head, or `"cls"`: LayerNorm(h_[CLS] + h_i) first, so [CLS] learns from every
 * token's detection; saved as config.json `"rtd_head": "cls"` plus
 * `discriminator_predictions.LayerNorm.*`, whose encoder HF loads unchanged; left out: plain
 * for a new pair, a loaded model as its files are; JSON only), tie_generator_output (true:
 * the masked-LM head's output weights are the word table, the paper's; false: a matrix of its
 * own, saved as `generator_lm_head.weight` with `"tie_word_embeddings": false`, which HF loads;
 * left out: tied for a new model, a loaded model as its files are; JSON only),
 * cls_contrast_weight (a sequence-level loss for [CLS], COCO-LM's contrastive one with the
 * generator's pass as the second view: each sequence's [CLS] states in the two towers must find
 * each other among the micro-batch's, through projections kept in the trainer's checkpoints but
 * not in the exported models; default 0, off; JSON only), cls_contrast_temperature (its
 * softmax temperature, at least 0.01; default 0.1; JSON only).
 * max_seq_len left out is 128, or the model's max_position_embeddings when smaller. On failure `*out` is NULL.
 *
 * # Safety
 * `init` must be a NUL-terminated string, `options_json` NULL or one; `out` valid.
 */
electra_status electra_trainer_new(const char *init,
                                   const char *options_json,
                                   electra_trainer **out);

/**
 * One pre-training step on a batch of `batch*seq_len` token ids: the library masks, samples,
 * computes the joint loss and updates the weights. `attention_mask` and `token_type_ids` may
 * be NULL (all ones, all zeros); `stats` may be NULL. Bad input, a non-finite loss or gradient
 * (`ELECTRA_ERR_NUMERIC`) and cancellation (`ELECTRA_ERR_CANCELLED`) leave the trainer exactly
 * as it was and usable.
 *
 * # Safety
 * Input arrays must hold `batch*seq_len` elements (or be NULL where allowed); `stats` NULL or
 * valid for `stats->struct_size` bytes.
 */
electra_status electra_trainer_step(electra_trainer *t,
                                    const int32_t *input_ids,
                                    const int32_t *attention_mask,
                                    const int32_t *token_type_ids,
                                    size_t batch,
                                    size_t seq_len,
                                    electra_step_stats *stats);

/**
 * Saves the full trainer state (weights, Adam moments, step, RNG, options) to
 * `dir/trainer.safetensors`, under the save contract (SAVES above): a failure leaves the
 * previous checkpoint intact, and nothing else in `dir` is touched.
 *
 * # Safety
 * `t` must be a live trainer; `dir` a NUL-terminated string.
 */
electra_status electra_trainer_save(electra_trainer *t, const char *dir);

/**
 * Restores a trainer saved by `electra_trainer_save`, on the device and thread count it was
 * created with; training continues bit-identically.
 *
 * # Safety
 * `dir` must be a NUL-terminated string; `out` valid.
 */
electra_status electra_trainer_resume(const char *dir, electra_trainer **out);

/**
 * `electra_trainer_resume` elsewhere: `options_json` is NULL or a JSON object with the keys
 * `device` (`"cpu"`, `"cuda"`, `"cuda:N"`) and `threads`; an absent key keeps the checkpoint's
 * value. A run begun on a GPU continues on a machine without one with `{"device": "cpu"}`. In
 * a run with a host's all-reduce every rank resumes the same checkpoint with its own `rank`
 * (`{"rank": 1}`) and then sets the all-reduce again.
 *
 * # Safety
 * `dir` must be a NUL-terminated string, `options_json` NULL or one; `out` valid.
 */
electra_status electra_trainer_resume_with_options(const char *dir,
                                                   const char *options_json,
                                                   electra_trainer **out);

/**
 * Makes a trainer created with options `rank` and `world_size` one of `world_size` data-parallel
 * ranks whose gradients the host sums with `allreduce` (its MPI, Gloo, Horovod, NCCL through
 * host memory, or threads of its own). A collective call: every rank calls it, before its first
 * step or right after resuming, and it checks that the ranks are distinct and hold the same
 * options, step and weights (`ELECTRA_ERR_DISTRIBUTED` otherwise). From then on
 * `electra_trainer_step` and `electra_trainer_save` are collective calls too: every rank makes
 * them in the same order (each step on its own batch; the save is written by rank 0, into the
 * directory rank 0 names, with every rank's RNG and cursor state). A failure on one rank fails
 * that step on every rank, changing nothing anywhere. Not for a trainer with `distributed`
 * `"mpi"`.
 *
 * # Safety
 * `t` must be a live trainer; `allreduce` and `user_data` must stay valid, and usable from the
 * thread that steps the trainer, until the trainer is freed.
 */
electra_status electra_trainer_set_allreduce(electra_trainer *t,
                                             electra_allreduce_fn allreduce,
                                             void *user_data);

/**
 * Writes the model in the pair layout (`dir/discriminator`, `dir/generator`), each an HF
 * directory loadable by `transformers` and by `electra_model_load`, under the save contract
 * (SAVES above).
 *
 * # Safety
 * `t` must be a live trainer; `dir` a NUL-terminated string.
 */
electra_status electra_trainer_export(electra_trainer *t, const char *dir);

/**
 * A snapshot of the trainer's current weights as a model for inference (free it with
 * `electra_model_free`; later steps do not change it).
 *
 * # Safety
 * `t` must be a live trainer; `out` valid.
 */
electra_status electra_trainer_get_model(electra_trainer *t, electra_model **out);

/**
 * Asks the running (or next) step to stop: it returns `ELECTRA_ERR_CANCELLED` and leaves the
 * trainer consistent. Safe to call from any thread while another steps; NULL is a no-op.
 *
 * # Safety
 * `t` must be NULL or a live trainer.
 */
void electra_trainer_cancel(electra_trainer *t);

/**
 * Frees a trainer. NULL, an already freed trainer and any other value are harmless no-ops. A
 * step running in another thread finishes normally (cancel it first to make that quick); the
 * memory is released when it returns.
 *
 * # Safety
 * None: `t` is looked up in the registry of live handles, never dereferenced.
 */
void electra_trainer_free(electra_trainer *t);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ELECTRA_H */
