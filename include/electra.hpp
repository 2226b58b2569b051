/*
 * electra.hpp: a header-only C++11 wrapper over the C interface of libelectra (electra.h).
 *
 * Each class owns one handle and frees it in its destructor; classes are move-only (moving
 * leaves the source empty). Failures throw electra::Error, a std::runtime_error that carries the
 * electra_status code; what() reads "<C function>: <library message>". Inputs are
 * std::vector<int32_t> whose lengths are checked here (the C functions cannot check the length
 * of a raw array), results come back as std::vector<float>.
 *
 *   #include "electra.hpp"
 *
 *   electra::Model model = electra::Model::load("models/electra-small");
 *   electra::Session session(model);
 *   std::vector<int32_t> ids = {101, 7592, 2088, 102};
 *   std::vector<float> logits = session.discriminate(ids, 1, ids.size());   // > 0: "replaced"
 *
 * Thread safety is the C library's: a Model may be shared by sessions on several threads; a
 * Session, Trainer or FineTuner is used by one thread at a time (Trainer::cancel excepted).
 * Link with -lelectra (pkg-config --libs electra, or CMake target electra::electra).
 */
#ifndef ELECTRA_HPP
#define ELECTRA_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "electra.h"

namespace electra {

/** A failed libelectra call: status() is the ELECTRA_ERR_* code, what() the full message. */
class Error : public std::runtime_error {
public:
    Error(electra_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    /** The ELECTRA_ERR_* code. */
    electra_status status() const noexcept { return status_; }
    /** The code's static name ("io", "invalid argument", ...). */
    const char *status_name() const noexcept { return electra_status_str(status_); }

private:
    electra_status status_;
};

namespace detail {

/** The calling thread's last libelectra error message. */
inline std::string last_error_message() {
    std::size_t len = electra_last_error_message(NULL, 0);
    if (len == 0)
        return std::string();
    std::vector<char> buf(len + 1);
    std::size_t got = electra_last_error_message(&buf[0], buf.size());
    return std::string(&buf[0], got < len ? got : len);
}

/** Throws Error when `status` is not ELECTRA_OK; `call` names the C function. */
inline void check(electra_status status, const char *call) {
    if (status == ELECTRA_OK)
        return;
    std::string message = last_error_message();
    // The library's message already starts with the kind of failure ("I/O error on ...").
    throw Error(status, std::string(call) + ": " + (message.empty() ? electra_status_str(status) : message));
}

/** a * b, throwing on overflow. */
inline std::size_t mul(std::size_t a, std::size_t b) {
    if (a != 0 && b > static_cast<std::size_t>(-1) / a)
        throw Error(ELECTRA_ERR_INVALID_ARGUMENT, "electra.hpp: result size overflows size_t");
    return a * b;
}

/** The vector's elements, or NULL when it is empty. */
inline const int32_t *data(const std::vector<int32_t> &v) {
    return v.empty() ? NULL : &v[0];
}

/** An optional per-token array: empty means NULL (the library's default); else batch*seq_len. */
inline const int32_t *optional(const std::vector<int32_t> &v, std::size_t n, const char *what) {
    if (v.empty())
        return NULL;
    if (v.size() != n)
        throw Error(ELECTRA_ERR_SHAPE, std::string("electra.hpp: ") + what + " has " + std::to_string(v.size()) +
                                           " elements, batch*seq_len is " + std::to_string(n));
    return &v[0];
}

/** input_ids must hold exactly batch*seq_len elements. */
inline std::size_t check_ids(const std::vector<int32_t> &ids, std::size_t batch, std::size_t seq_len) {
    std::size_t n = mul(batch, seq_len);
    if (ids.size() != n)
        throw Error(ELECTRA_ERR_SHAPE, "electra.hpp: input_ids has " + std::to_string(ids.size()) +
                                           " elements, batch*seq_len is " + std::to_string(n));
    return n;
}

/** Owns one handle; `Free` releases it (and accepts NULL). Move-only. */
template <typename T, void (*Free)(T *)>
class Handle {
public:
    Handle() noexcept : p_(NULL) {}
    explicit Handle(T *p) noexcept : p_(p) {}
    ~Handle() { Free(p_); }
    Handle(Handle &&other) noexcept : p_(other.p_) { other.p_ = NULL; }
    Handle &operator=(Handle &&other) noexcept {
        if (this != &other) {
            Free(p_);
            p_ = other.p_;
            other.p_ = NULL;
        }
        return *this;
    }
    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;

    /** The raw handle (still owned), for calls the wrapper does not cover. */
    T *get() const noexcept { return p_; }
    /** Gives up ownership: the caller frees the returned handle. */
    T *release() noexcept {
        T *p = p_;
        p_ = NULL;
        return p;
    }
    /** False after a move or release. */
    explicit operator bool() const noexcept { return p_ != NULL; }

protected:
    /** Throws instead of passing NULL (a moved-from object) to the library. */
    T *live(const char *what) const {
        if (p_ == NULL)
            throw Error(ELECTRA_ERR_INVALID_HANDLE, std::string("electra.hpp: ") + what + " on an empty (moved-from) object");
        return p_;
    }

private:
    T *p_;
};

}  // namespace detail

/** The ABI of the loaded library (compare with ELECTRA_ABI_VERSION). */
inline uint32_t abi_version() noexcept {
    return electra_abi_version();
}

/** The library version, e.g. "0.1.0". */
inline std::string version() {
    return electra_version();
}

/** Throws when the loaded library's ABI differs from the one this header was compiled for. */
inline void check_abi() {
    if (electra_abi_version() != ELECTRA_ABI_VERSION)
        throw Error(ELECTRA_ERR_UNSUPPORTED, "libelectra has ABI " + std::to_string(electra_abi_version()) +
                                                 ", this program was compiled for ABI " +
                                                 std::to_string(ELECTRA_ABI_VERSION));
}

/** A loaded model (discriminator, generator and/or classifier). */
class Model : public detail::Handle<electra_model, electra_model_free> {
public:
    Model() noexcept {}
    /** Takes ownership of a handle from the C API. */
    explicit Model(electra_model *adopt) noexcept : Handle(adopt) {}

    /** An HF directory (config.json + model.safetensors) or the pair layout. */
    static Model load(const std::string &path) {
        electra_model *m = NULL;
        detail::check(electra_model_load(path.c_str(), &m), "electra_model_load");
        return Model(m);
    }

    /** The model's dimensions. */
    electra_model_info info() const {
        electra_model_info i;
        std::memset(&i, 0, sizeof i);
        i.struct_size = sizeof i;
        detail::check(electra_model_get_info(live("Model::info"), &i), "electra_model_get_info");
        return i;
    }

    /** Saves in the pair layout (dir/discriminator, dir/generator). */
    void save(const std::string &dir) const {
        detail::check(electra_model_save(live("Model::save"), dir.c_str()), "electra_model_save");
    }
};

/**
 * An inference session over a model. It keeps the weights alive, so the Model may be destroyed
 * first. Every method takes batch*seq_len input_ids (row-major) and optional attention_mask
 * (1 = token, 0 = padding; empty: all ones) and token_type_ids (empty: all zeros).
 */
class Session : public detail::Handle<electra_session, electra_session_free> {
public:
    Session() noexcept : info_() {}
    explicit Session(const Model &model) : info_(model.info()) {
        electra_session *s = NULL;
        detail::check(electra_session_new(model.get(), &s), "electra_session_new");
        Handle::operator=(Handle(s));
    }

    /** Dimensions of the session's model. */
    const electra_model_info &info() const noexcept { return info_; }

    /** Replaced-token detection: batch*seq_len raw logits (> 0 means "replaced"). */
    std::vector<float> discriminate(const std::vector<int32_t> &input_ids, std::size_t batch, std::size_t seq_len,
                                    const std::vector<int32_t> &attention_mask = std::vector<int32_t>(),
                                    const std::vector<int32_t> &token_type_ids = std::vector<int32_t>()) {
        return run(electra_session_discriminate, "electra_session_discriminate", 1, input_ids, batch, seq_len,
                   attention_mask, token_type_ids);
    }

    /** Generator (masked-LM) logits: batch*seq_len*vocab_size floats. */
    std::vector<float> generator_logits(const std::vector<int32_t> &input_ids, std::size_t batch,
                                        std::size_t seq_len,
                                        const std::vector<int32_t> &attention_mask = std::vector<int32_t>(),
                                        const std::vector<int32_t> &token_type_ids = std::vector<int32_t>()) {
        return run(electra_session_generator_logits, "electra_session_generator_logits", info_.vocab_size,
                   input_ids, batch, seq_len, attention_mask, token_type_ids);
    }

    /** The discriminator's last hidden states: batch*seq_len*hidden_size floats. */
    std::vector<float> hidden_states(const std::vector<int32_t> &input_ids, std::size_t batch, std::size_t seq_len,
                                     const std::vector<int32_t> &attention_mask = std::vector<int32_t>(),
                                     const std::vector<int32_t> &token_type_ids = std::vector<int32_t>()) {
        return run(electra_session_hidden_states, "electra_session_hidden_states", info_.hidden_size, input_ids,
                   batch, seq_len, attention_mask, token_type_ids);
    }

    /** Classification logits: batch*num_labels floats (models with a classification head). */
    std::vector<float> classify(const std::vector<int32_t> &input_ids, std::size_t batch, std::size_t seq_len,
                                const std::vector<int32_t> &attention_mask = std::vector<int32_t>(),
                                const std::vector<int32_t> &token_type_ids = std::vector<int32_t>()) {
        std::size_t n = detail::check_ids(input_ids, batch, seq_len);
        const int32_t *mask = detail::optional(attention_mask, n, "attention_mask");
        const int32_t *types = detail::optional(token_type_ids, n, "token_type_ids");
        std::vector<float> out(detail::mul(batch, info_.num_labels));
        detail::check(electra_session_classify(live("Session::classify"), detail::data(input_ids), mask, types, batch, seq_len,
                                               out.empty() ? NULL : &out[0], out.size()),
                      "electra_session_classify");
        return out;
    }

private:
    typedef electra_status (*Forward)(electra_session *, const int32_t *, const int32_t *, const int32_t *,
                                      std::size_t, std::size_t, float *, std::size_t);

    std::vector<float> run(Forward f, const char *call, std::size_t per_token, const std::vector<int32_t> &input_ids,
                           std::size_t batch, std::size_t seq_len, const std::vector<int32_t> &attention_mask,
                           const std::vector<int32_t> &token_type_ids) {
        std::size_t n = detail::check_ids(input_ids, batch, seq_len);
        const int32_t *mask = detail::optional(attention_mask, n, "attention_mask");
        const int32_t *types = detail::optional(token_type_ids, n, "token_type_ids");
        std::vector<float> out(detail::mul(n, per_token));
        detail::check(f(live(call), detail::data(input_ids), mask, types, batch, seq_len,
                        out.empty() ? NULL : &out[0], out.size()),
                      call);
        return out;
    }

    electra_model_info info_;
};

/** Pre-training state (model, optimizer, RNG). */
class Trainer : public detail::Handle<electra_trainer, electra_trainer_free> {
public:
    Trainer() noexcept {}
    /** Takes ownership of a handle from the C API. */
    explicit Trainer(electra_trainer *adopt) noexcept : Handle(adopt) {}

    /**
     * `init`: a preset ("tiny", "small", "base", "large") or a model directory. `options_json`:
     * a JSON object (see electra_trainer_new), or empty for the defaults.
     */
    explicit Trainer(const std::string &init, const std::string &options_json = std::string()) {
        electra_trainer *t = NULL;
        detail::check(electra_trainer_new(init.c_str(), options_json.empty() ? NULL : options_json.c_str(), &t),
                      "electra_trainer_new");
        Handle::operator=(Handle(t));
    }

    /** Restores a trainer saved by save(); training continues bit-identically. */
    static Trainer resume(const std::string &dir) {
        electra_trainer *t = NULL;
        detail::check(electra_trainer_resume(dir.c_str(), &t), "electra_trainer_resume");
        return Trainer(t);
    }

    /** One update on batch*seq_len token ids; returns what it measured. */
    electra_step_stats step(const std::vector<int32_t> &input_ids, std::size_t batch, std::size_t seq_len,
                            const std::vector<int32_t> &attention_mask = std::vector<int32_t>(),
                            const std::vector<int32_t> &token_type_ids = std::vector<int32_t>()) {
        std::size_t n = detail::check_ids(input_ids, batch, seq_len);
        const int32_t *mask = detail::optional(attention_mask, n, "attention_mask");
        const int32_t *types = detail::optional(token_type_ids, n, "token_type_ids");
        electra_step_stats stats;
        std::memset(&stats, 0, sizeof stats);
        stats.struct_size = sizeof stats;
        detail::check(electra_trainer_step(live("Trainer::step"), detail::data(input_ids), mask,
                                           types, batch, seq_len, &stats),
                      "electra_trainer_step");
        return stats;
    }

    /** Saves the full state to dir/trainer.safetensors (atomically). */
    void save(const std::string &dir) {
        detail::check(electra_trainer_save(live("Trainer::save"), dir.c_str()), "electra_trainer_save");
    }

    /** Writes the model in the HF pair layout (dir/discriminator, dir/generator). */
    void export_model(const std::string &dir) {
        detail::check(electra_trainer_export(live("Trainer::export_model"), dir.c_str()), "electra_trainer_export");
    }

    /** A snapshot of the current weights for inference (later steps do not change it). */
    Model model() {
        electra_model *m = NULL;
        detail::check(electra_trainer_get_model(live("Trainer::model"), &m), "electra_trainer_get_model");
        return Model(m);
    }

    /** Makes the running (or next) step throw Error(ELECTRA_ERR_CANCELLED). Any thread. */
    void cancel() noexcept { electra_trainer_cancel(get()); }
};

/** Fine-tuning a discriminator as a sequence classifier. */
class FineTuner : public detail::Handle<electra_finetuner, electra_finetuner_free> {
public:
    FineTuner() noexcept {}
    /** Takes ownership of a handle from the C API. */
    explicit FineTuner(electra_finetuner *adopt) noexcept : Handle(adopt) {}

    /**
     * Starts from any checkpoint with a discriminator (a fresh head of `num_labels` labels) or
     * an existing classifier. `options_json`: see electra_finetuner_new; empty for the defaults.
     */
    FineTuner(const std::string &model_dir, std::size_t num_labels,
              const std::string &options_json = std::string()) {
        electra_finetuner *f = NULL;
        detail::check(electra_finetuner_new(model_dir.c_str(), num_labels,
                                            options_json.empty() ? NULL : options_json.c_str(), &f),
                      "electra_finetuner_new");
        Handle::operator=(Handle(f));
    }

    /** One update on batch rows of seq_len ids, one label per row. */
    electra_finetune_stats step(const std::vector<int32_t> &input_ids, std::size_t batch, std::size_t seq_len,
                                const std::vector<int32_t> &labels,
                                const std::vector<int32_t> &attention_mask = std::vector<int32_t>(),
                                const std::vector<int32_t> &token_type_ids = std::vector<int32_t>()) {
        std::size_t n = detail::check_ids(input_ids, batch, seq_len);
        const int32_t *mask = detail::optional(attention_mask, n, "attention_mask");
        const int32_t *types = detail::optional(token_type_ids, n, "token_type_ids");
        if (labels.size() != batch)
            throw Error(ELECTRA_ERR_SHAPE, "electra.hpp: labels has " + std::to_string(labels.size()) +
                                               " elements, batch is " + std::to_string(batch));
        electra_finetune_stats stats;
        std::memset(&stats, 0, sizeof stats);
        stats.struct_size = sizeof stats;
        detail::check(electra_finetuner_step(live("FineTuner::step"), detail::data(input_ids), mask,
                                             types, batch, seq_len, detail::data(labels), &stats),
                      "electra_finetuner_step");
        return stats;
    }

    /** Saves an HF ElectraForSequenceClassification directory (loadable by Model::load). */
    void save(const std::string &dir) {
        detail::check(electra_finetuner_save(live("FineTuner::save"), dir.c_str()), "electra_finetuner_save");
    }
};

}  // namespace electra

#endif /* ELECTRA_HPP */
