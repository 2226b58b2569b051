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
 * On text, with the tokenizer saved beside the model (tokenizer.json or vocab.txt):
 *
 *   electra_text_params p = electra::text_params();
 *   p.normalize = 1;                                                    // unit-length rows
 *   std::vector<float> emb = session.embed_texts({"a whale", "a ship"}, p);  // 2 * hidden_size
 *   std::vector<float> probs = session.classify_texts({"a whale"});     // fine-tuned classifiers
 *   std::vector<std::string> labels = model.label_names();
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

/** The strings as electra_texts (pointing into them: keep them alive while these are used). */
inline std::vector<electra_text> texts(const std::vector<std::string> &strings) {
    std::vector<electra_text> out(strings.size());
    for (std::size_t i = 0; i < strings.size(); i++) {
        out[i].data = strings[i].data();
        out[i].len = strings[i].size();
    }
    return out;
}

/** The vector's elements, or NULL when it is empty. */
template <typename T>
inline T *ptr(std::vector<T> &v) {
    return v.empty() ? NULL : &v[0];
}

/**
 * A string written by a call that follows the library's string protocol (NUL-terminated into
 * `buf` of `cap` bytes, `*len` its length; `buf` NULL with `cap` 0 asks the length): asks the
 * length, then fetches.
 */
template <typename F>
inline std::string fetch_string(F f, const char *call) {
    std::size_t len = 0;
    detail::check(f(static_cast<char *>(NULL), static_cast<std::size_t>(0), &len), call);
    std::vector<char> buf(len + 1);
    detail::check(f(&buf[0], buf.size(), &len), call);
    return std::string(&buf[0], len);
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

/** The defaults of the text calls (electra_text_default_params): set fields, then pass it. */
inline electra_text_params text_params() {
    return electra_text_default_params();
}

/** Token ids of a batch of texts, padded to the longest row (Tokenizer::encode). */
struct Encoding {
    std::size_t batch;
    /** Tokens per row (the longest row's). */
    std::size_t seq_len;
    /** batch*seq_len ids, row-major, padded with [PAD]. */
    std::vector<int32_t> input_ids;
    /** 1 = token, 0 = padding. */
    std::vector<int32_t> attention_mask;
    /** 0 = first text, 1 = second (pairs). */
    std::vector<int32_t> token_type_ids;
    /** 2 per token: start and end byte offsets into its text (0, 0 for special tokens). */
    std::vector<uint32_t> offsets;
};

/**
 * A WordPiece tokenizer (tokenizer.json or vocab.txt). Model::tokenizer() gives the one saved
 * beside a model; the Session text calls use that one unless given another.
 */
class Tokenizer : public detail::Handle<electra_tokenizer, electra_tokenizer_free> {
public:
    Tokenizer() noexcept {}
    /** Takes ownership of a handle from the C API. */
    explicit Tokenizer(electra_tokenizer *adopt) noexcept : Handle(adopt) {}

    /** A model directory, a tokenizer.json or a vocab.txt. */
    static Tokenizer load(const std::string &path) {
        electra_tokenizer *t = NULL;
        detail::check(electra_tokenizer_load(path.c_str(), &t), "electra_tokenizer_load");
        return Tokenizer(t);
    }

    /** The bytes of a tokenizer.json (copied). */
    static Tokenizer from_memory(const std::string &json) {
        electra_tokenizer *t = NULL;
        detail::check(electra_tokenizer_load_from_memory(reinterpret_cast<const uint8_t *>(json.data()), json.size(), &t),
                      "electra_tokenizer_load_from_memory");
        return Tokenizer(t);
    }

    /** Vocabulary size and special ids. */
    electra_tokenizer_info info() const {
        electra_tokenizer_info i;
        std::memset(&i, 0, sizeof i);
        i.struct_size = sizeof i;
        detail::check(electra_tokenizer_get_info(live("Tokenizer::info"), &i), "electra_tokenizer_get_info");
        return i;
    }

    /**
     * Encodes texts (with `pairs` non-empty: as many text pairs, two segments each), cut to
     * `max_length` tokens (0: no limit), with [CLS]/[SEP] unless `add_special_tokens` is false.
     */
    Encoding encode(const std::vector<std::string> &texts,
                    const std::vector<std::string> &pairs = std::vector<std::string>(), std::size_t max_length = 0,
                    bool add_special_tokens = true) const {
        if (!pairs.empty() && pairs.size() != texts.size())
            throw Error(ELECTRA_ERR_SHAPE, "electra.hpp: " + std::to_string(pairs.size()) + " pairs for " +
                                               std::to_string(texts.size()) + " texts");
        std::vector<electra_text> a = detail::texts(texts), b = detail::texts(pairs);
        electra_encode_params p = electra_encode_default_params();
        p.add_special_tokens = add_special_tokens ? 1 : 0;
        p.max_length = static_cast<uint32_t>(max_length);
        Encoding e;
        e.batch = texts.size();
        e.seq_len = 0;
        electra_tokenizer *t = live("Tokenizer::encode");
        const electra_text *pb = b.empty() ? NULL : &b[0];
        detail::check(electra_tokenizer_encode(t, detail::ptr(a), pb, a.size(), &p, NULL, NULL, NULL, NULL, 0, &e.seq_len),
                      "electra_tokenizer_encode");
        std::size_t n = detail::mul(e.batch, e.seq_len);
        e.input_ids.resize(n);
        e.attention_mask.resize(n);
        e.token_type_ids.resize(n);
        e.offsets.resize(detail::mul(n, 2));
        detail::check(electra_tokenizer_encode(t, detail::ptr(a), pb, a.size(), &p, detail::ptr(e.input_ids),
                                               detail::ptr(e.attention_mask), detail::ptr(e.token_type_ids),
                                               detail::ptr(e.offsets), n, &e.seq_len),
                      "electra_tokenizer_encode");
        return e;
    }

    /** The text of token ids (WordPiece pieces glued); special tokens left out when asked. */
    std::string decode(const std::vector<int32_t> &ids, bool skip_special_tokens = true) const {
        electra_tokenizer *t = live("Tokenizer::decode");
        const int32_t *p = detail::data(ids);
        std::size_t n = ids.size();
        int32_t skip = skip_special_tokens ? 1 : 0;
        return detail::fetch_string([&](char *buf, std::size_t cap, std::size_t *len) {
            return electra_tokenizer_decode(t, p, n, skip, buf, cap, len);
        }, "electra_tokenizer_decode");
    }

    /** The id of a vocabulary entry ("[MASK]", "##ing"), or -1 when there is none. */
    int32_t token_to_id(const std::string &token) const {
        int32_t id = -1;
        detail::check(electra_tokenizer_token_to_id(live("Tokenizer::token_to_id"), token.data(), token.size(), &id),
                      "electra_tokenizer_token_to_id");
        return id;
    }

    /** The vocabulary entry of an id. */
    std::string id_to_token(int32_t id) const {
        electra_tokenizer *t = live("Tokenizer::id_to_token");
        return detail::fetch_string([&](char *buf, std::size_t cap, std::size_t *len) {
            return electra_tokenizer_id_to_token(t, id, buf, cap, len);
        }, "electra_tokenizer_id_to_token");
    }
};

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

    /** The tokenizer saved beside the weights (shared with the model; outlives it). */
    Tokenizer tokenizer() const {
        electra_tokenizer *t = NULL;
        detail::check(electra_model_tokenizer(live("Model::tokenizer"), &t), "electra_model_tokenizer");
        return Tokenizer(t);
    }

    /** A classifier's label names (config.json's id2label; LABEL_<i> where it has none). */
    std::vector<std::string> label_names() const {
        electra_model *m = live("Model::label_names");
        std::vector<std::string> names;
        for (std::size_t i = 0; i < info().num_labels; i++)
            names.push_back(detail::fetch_string([&](char *buf, std::size_t cap, std::size_t *len) {
                return electra_model_label_name(m, i, buf, cap, len);
            }, "electra_model_label_name"));
        if (names.empty())  // not a classifier: the library's error
            detail::fetch_string([&](char *buf, std::size_t cap, std::size_t *len) {
                return electra_model_label_name(m, 0, buf, cap, len);
            }, "electra_model_label_name");
        return names;
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

    /**
     * Sentence embeddings: texts.size()*hidden_size floats, row-major, pooled as `params` says
     * (mean by default; params.normalize = 1 for unit length, so a dot product is the cosine).
     * `tokenizer` empty (the default): the model's own.
     */
    std::vector<float> embed_texts(const std::vector<std::string> &texts,
                                   const electra_text_params &params = text_params(),
                                   const Tokenizer &tokenizer = Tokenizer()) {
        std::vector<electra_text> t = detail::texts(texts);
        std::vector<float> out(detail::mul(t.size(), info_.hidden_size));
        detail::check(electra_session_embed_texts(live("Session::embed_texts"), tokenizer.get(), detail::ptr(t), t.size(),
                                                  &params, detail::ptr(out), out.size()),
                      "electra_session_embed_texts");
        return out;
    }

    /**
     * Class probabilities (a softmax per row) of a fine-tuned classifier: texts.size()*num_labels
     * floats, row-major; Model::label_names() names the columns. `pairs` non-empty: text pairs.
     */
    std::vector<float> classify_texts(const std::vector<std::string> &texts,
                                      const std::vector<std::string> &pairs = std::vector<std::string>(),
                                      const electra_text_params &params = text_params(),
                                      const Tokenizer &tokenizer = Tokenizer()) {
        if (!pairs.empty() && pairs.size() != texts.size())
            throw Error(ELECTRA_ERR_SHAPE, "electra.hpp: " + std::to_string(pairs.size()) + " pairs for " +
                                               std::to_string(texts.size()) + " texts");
        std::vector<electra_text> a = detail::texts(texts), b = detail::texts(pairs);
        std::vector<float> out(detail::mul(a.size(), info_.num_labels));
        detail::check(electra_session_classify_texts(live("Session::classify_texts"), tokenizer.get(), detail::ptr(a),
                                                     b.empty() ? NULL : &b[0], a.size(), &params, detail::ptr(out),
                                                     out.size()),
                      "electra_session_classify_texts");
        return out;
    }

    /** Replaced-token detection per word: byte spans into `text` and P(replaced), in text order. */
    std::vector<electra_word_score> detect_text(const std::string &text, const electra_text_params &params = text_params(),
                                                const Tokenizer &tokenizer = Tokenizer()) {
        electra_session *s = live("Session::detect_text");
        std::size_t n = 0;
        detail::check(electra_session_detect_text(s, tokenizer.get(), text.data(), text.size(), &params, NULL, 0, &n),
                      "electra_session_detect_text");
        std::vector<electra_word_score> out(n);
        detail::check(electra_session_detect_text(s, tokenizer.get(), text.data(), text.size(), &params,
                                                  detail::ptr(out), out.size(), &n),
                      "electra_session_detect_text");
        out.resize(n);
        return out;
    }

    /**
     * Fill-mask with the generator: for each [MASK] of `text` (in text order) its `top_k` most
     * likely tokens, best first (Tokenizer::id_to_token gives their text).
     */
    std::vector<std::vector<electra_token_score>> fill_mask(const std::string &text, std::size_t top_k = 5,
                                                            const electra_text_params &params = text_params(),
                                                            const Tokenizer &tokenizer = Tokenizer()) {
        electra_session *s = live("Session::fill_mask");
        std::size_t masks = 0;
        detail::check(electra_session_fill_mask_text(s, tokenizer.get(), text.data(), text.size(), top_k, &params, NULL, 0,
                                                     &masks),
                      "electra_session_fill_mask_text");
        // The library cuts top_k to the vocabulary size.
        std::size_t k = top_k < info_.vocab_size ? top_k : static_cast<std::size_t>(info_.vocab_size);
        std::vector<electra_token_score> flat(detail::mul(masks, k));
        detail::check(electra_session_fill_mask_text(s, tokenizer.get(), text.data(), text.size(), top_k, &params,
                                                     detail::ptr(flat), flat.size(), &masks),
                      "electra_session_fill_mask_text");
        std::vector<std::vector<electra_token_score>> out(masks);
        for (std::size_t i = 0; i < masks; i++)
            out[i].assign(flat.begin() + static_cast<std::ptrdiff_t>(i * k), flat.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
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
