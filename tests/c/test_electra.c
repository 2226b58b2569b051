/*
 * test_electra.c: the C ABI as a C program sees it (include/electra.h + libelectra.so).
 *
 * Checks parity with PyTorch on the fixtures (the expected values are read straight from
 * tests/fixtures/<case>/expected.safetensors by a small reader below, so no Rust is involved),
 * every documented error path (the text calls on a tokenizer-carrying copy of a fixture among
 * them), the error-message and struct-size protocols, and one model shared
 * by sessions on several threads. Ends with "N passed, N failed"; exits non-zero on a failure.
 *
 * Build and run: bash tests/c/run.sh (C99, -Wall -Wextra -Werror -pedantic, under valgrind).
 * Usage: test_electra [TMP_DIR]   (default: a new dir in /tmp), from the repository root; the
 * environment variable ELECTRA_FIXTURES overrides the fixture directory (tests/fixtures).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "electra.h"

/* Layout checks at compile time (C99 has no _Static_assert); tests/ffi.rs checks the same. */
typedef char check_info_size[sizeof(electra_model_info) == 56 ? 1 : -1];
typedef char check_info_params[offsetof(electra_model_info, num_parameters) == 40 ? 1 : -1];
typedef char check_info_labels[offsetof(electra_model_info, num_labels) == 48 ? 1 : -1];
typedef char check_status_size[sizeof(electra_status) == 4 ? 1 : -1];

#define RTOL 1e-5f
#define FLOOR 1e-6f
#define SENTINEL (-12345.678f)

static const char *const CASES[] = {"emb_lt_hidden", "emb_eq_hidden", "gelu_new_act", "relu_act"};
#define NCASES (sizeof CASES / sizeof CASES[0])

static const char *fixtures = "tests/fixtures";
static char tmp_root[512];
static int passed, failed;
/* Worst parity seen over every compared tensor. */
static double worst_rel, worst_abs;
static char worst_rel_where[128], worst_abs_where[128];

/* ---------------------------------------------------------------------------------------------
 * Checks and messages.
 */

static void check_at(const char *file, int line, int ok, const char *cond, const char *fmt, ...) {
    va_list ap;
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#define CHECK(cond, ...) check_at(__FILE__, __LINE__, (cond) != 0, #cond, __VA_ARGS__)

/* The calling thread's last error message, in a static buffer (main thread only). */
static const char *last_error(void) {
    static char buf[4096];
    electra_last_error_message(buf, sizeof buf);
    return buf;
}

/* The status must be `want` and the message must contain `needle`. */
static void expect_at(const char *file, int line, electra_status got, electra_status want, const char *needle) {
    const char *msg = last_error();
    check_at(file, line, got == want, "status", "expected %s (%d), got %s (%d): %s", electra_status_str(want),
             (int)want, electra_status_str(got), (int)got, msg);
    check_at(file, line, strstr(msg, needle) != NULL, "message", "%s lacks \"%s\"", msg, needle);
}
#define EXPECT(got, want, needle) expect_at(__FILE__, __LINE__, (got), (want), (needle))

static int all_sentinel(const float *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != SENTINEL) return 0;
    return 1;
}

static float *sentinel_buffer(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    size_t i;
    if (!p) abort();
    for (i = 0; i < (n ? n : 1); i++) p[i] = SENTINEL;
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Files and a minimal safetensors reader: 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}, raw data.
 */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

typedef struct {
    char *bytes;  /* the whole file */
    size_t len;
    char *header; /* NUL-terminated copy of the JSON header */
    size_t data_start;
} st_file;

static int st_open(const char *path, st_file *f) {
    uint64_t hlen = 0;
    int i;
    memset(f, 0, sizeof *f);
    f->bytes = read_file(path, &f->len);
    if (!f->bytes || f->len < 8) return 0;
    for (i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)f->bytes[i];
    if (hlen > f->len - 8) return 0;
    f->header = malloc((size_t)hlen + 1);
    if (!f->header) return 0;
    memcpy(f->header, f->bytes + 8, (size_t)hlen);
    f->header[hlen] = '\0';
    f->data_start = 8 + (size_t)hlen;
    return 1;
}

static void st_close(st_file *f) {
    free(f->bytes);
    free(f->header);
}

/* Position just after `"key"` and the following ':' within [p, end), or NULL. */
static const char *json_key(const char *p, const char *end, const char *key) {
    size_t k = strlen(key);
    for (; p + k + 2 <= end; p++) {
        if (p[0] == '"' && strncmp(p + 1, key, k) == 0 && p[k + 1] == '"') {
            p += k + 2;
            while (p < end && (*p == ' ' || *p == '\n')) p++;
            return p < end && *p == ':' ? p + 1 : NULL;
        }
    }
    return NULL;
}

/* Parses "[a, b, ...]" into up to `max` numbers; returns the count, or -1. */
static int json_uints(const char *p, const char *end, size_t *out, int max) {
    int n = 0;
    while (p < end && *p != '[') p++;
    if (p == end) return -1;
    p++;
    for (;;) {
        char *next;
        unsigned long long v;
        while (p < end && (*p == ' ' || *p == ',')) p++;
        if (p < end && *p == ']') return n;
        if (p >= end || n == max) return -1;
        v = strtoull(p, &next, 10);
        if (next == p) return -1;
        out[n++] = (size_t)v;
        p = next;
    }
}

/* Reads a tensor of `dtype` ("F32" or "I32") into a new array of 4-byte values. */
static void *st_read(const st_file *f, const char *name, const char *dtype, size_t *count, size_t *shape,
                     int *rank) {
    const char *obj = json_key(f->header, f->header + strlen(f->header), name), *end, *v;
    size_t offs[2], n = 1, i;
    unsigned char *out;
    int r;
    if (!obj) return NULL;
    end = strchr(obj, '}');
    if (!end) return NULL;
    v = json_key(obj, end, "dtype");
    if (!v || !strstr(v, dtype) || strstr(v, dtype) > end) return NULL;
    v = json_key(obj, end, "shape");
    if (!v || (r = json_uints(v, end, shape, 8)) < 0) return NULL;
    for (i = 0; i < (size_t)r; i++) n *= shape[i];
    v = json_key(obj, end, "data_offsets");
    if (!v || json_uints(v, end, offs, 2) != 2) return NULL;
    if (offs[1] < offs[0] || offs[1] - offs[0] != n * 4 || f->data_start + offs[1] > f->len) return NULL;
    out = malloc(n * 4 + 1);
    if (!out) return NULL;
    /* Little-endian in the file; assemble each value so the host's byte order does not matter. */
    for (i = 0; i < n; i++) {
        const unsigned char *b = (const unsigned char *)f->bytes + f->data_start + offs[0] + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(out + 4 * i, &u, 4);
    }
    *count = n;
    *rank = r;
    return out;
}

/* A fixture case's inputs and PyTorch outputs. */
typedef struct {
    int32_t *ids, *mask, *types;
    float *disc_logits, *disc_hidden, *gen_logits;
    size_t b, t, n_hidden, n_gen;
} fixture;

static int fixture_load(const char *c, fixture *fx) {
    char path[1024];
    st_file f;
    size_t shape[8], n;
    int rank, ok;
    memset(fx, 0, sizeof *fx);
    snprintf(path, sizeof path, "%s/%s/expected.safetensors", fixtures, c);
    if (!st_open(path, &f)) {
        fprintf(stderr, "cannot read %s\n", path);
        st_close(&f);
        return 0;
    }
    fx->ids = st_read(&f, "input_ids", "I32", &n, shape, &rank);
    if (fx->ids && rank == 2) {
        fx->b = shape[0];
        fx->t = shape[1];
    }
    fx->mask = st_read(&f, "attention_mask", "I32", &n, shape, &rank);
    fx->types = st_read(&f, "token_type_ids", "I32", &n, shape, &rank);
    fx->disc_logits = st_read(&f, "disc_logits", "F32", &n, shape, &rank);
    fx->disc_hidden = st_read(&f, "disc_hidden", "F32", &fx->n_hidden, shape, &rank);
    fx->gen_logits = st_read(&f, "gen_logits", "F32", &fx->n_gen, shape, &rank);
    st_close(&f);
    ok = fx->ids && fx->mask && fx->types && fx->disc_logits && fx->disc_hidden && fx->gen_logits && fx->b;
    if (!ok) fprintf(stderr, "%s: a tensor is missing or malformed\n", path);
    return ok;
}

static void fixture_free(fixture *fx) {
    free(fx->ids);
    free(fx->mask);
    free(fx->types);
    free(fx->disc_logits);
    free(fx->disc_hidden);
    free(fx->gen_logits);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers over the API.
 */

typedef electra_status (*run_fn)(electra_session *, const int32_t *, const int32_t *, const int32_t *, size_t,
                                 size_t, float *, size_t);

static electra_model *load(const char *dir) {
    electra_model *m = (electra_model *)&m; /* garbage the call must overwrite */
    electra_status st = electra_model_load(dir, &m);
    CHECK(st == ELECTRA_OK, "load %s: %s: %s", dir, electra_status_str(st), last_error());
    CHECK(st == ELECTRA_OK ? m != NULL : m == NULL, "*out after load");
    return st == ELECTRA_OK ? m : NULL;
}

static electra_model *load_case(const char *c, const char *sub) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s%s", fixtures, c, sub ? "/" : "", sub ? sub : "");
    return load(path);
}

static electra_session *new_session(const electra_model *m) {
    electra_session *s = NULL;
    electra_status st = electra_session_new(m, &s);
    CHECK(st == ELECTRA_OK && s != NULL, "session: %s", last_error());
    return s;
}

static electra_model_info get_info(const electra_model *m) {
    electra_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(electra_model_get_info(m, &info) == ELECTRA_OK, "get_info: %s", last_error());
    return info;
}

/* Compares like tests/common: |got - want| <= FLOOR * max|want| + RTOL * |want|. */
static void compare(const char *what, const float *got, const float *want, size_t n) {
    float scale = 0, atol;
    double max_abs = 0, max_rel = 0;
    size_t i, bad = 0, worst = 0;
    for (i = 0; i < n; i++)
        if (fabsf(want[i]) > scale) scale = fabsf(want[i]);
    atol = FLOOR * scale;
    for (i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)want[i]);
        if (!(err <= atol + RTOL * fabsf(want[i]))) {
            if (!bad) worst = i;
            bad++;
        }
        if (err > max_abs) max_abs = err;
        /* Relative error where it means something: |want| at least 1e-3 of the tensor's scale. */
        if (fabsf(want[i]) >= 1e-3f * scale && err / fabs((double)want[i]) > max_rel)
            max_rel = err / fabs((double)want[i]);
    }
    printf("  %-28s max_abs %.3e  max_rel %.3e (|want| >= 1e-3 max|want|)\n", what, max_abs, max_rel);
    if (max_rel > worst_rel) {
        worst_rel = max_rel;
        snprintf(worst_rel_where, sizeof worst_rel_where, "%s", what);
    }
    if (max_abs > worst_abs) {
        worst_abs = max_abs;
        snprintf(worst_abs_where, sizeof worst_abs_where, "%s", what);
    }
    CHECK(bad == 0, "%s: %lu elements off, first [%lu] got %.9g want %.9g", what, (unsigned long)bad,
          (unsigned long)worst, got[worst], want[worst]);
}

/* ---------------------------------------------------------------------------------------------
 * Tests.
 */

static void test_globals(void) {
    electra_status c;
    CHECK(electra_abi_version() == ELECTRA_ABI_VERSION, "abi %u", electra_abi_version());
    CHECK(electra_version() != NULL && strlen(electra_version()) > 0, "version");
    for (c = ELECTRA_OK; c <= ELECTRA_ERR_PANIC; c++)
        CHECK(strcmp(electra_status_str(c), "unknown status") != 0, "code %d has no name", (int)c);
    CHECK(strcmp(electra_status_str(ELECTRA_OK), "ok") == 0, "ok");
    CHECK(strcmp(electra_status_str(999), "unknown status") == 0, "999");
    CHECK(strcmp(electra_status_str(-1), "unknown status") == 0, "-1");
}

static void test_parity(void) {
    size_t k;
    for (k = 0; k < NCASES; k++) {
        const char *c = CASES[k];
        fixture fx;
        electra_model *pair, *disc;
        electra_session *s;
        electra_model_info info;
        float *d, *d2, *h, *g;
        size_t n;
        char what[96];
        if (!fixture_load(c, &fx)) {
            CHECK(0, "fixture %s", c);
            fixture_free(&fx);
            continue;
        }
        n = fx.b * fx.t;
        printf("%s (batch %lu x seq_len %lu)\n", c, (unsigned long)fx.b, (unsigned long)fx.t);
        pair = load_case(c, NULL);
        disc = load_case(c, "discriminator");
        if (!pair || !disc) {
            electra_model_free(pair);
            electra_model_free(disc);
            fixture_free(&fx);
            continue;
        }
        info = get_info(pair);
        CHECK(info.has_discriminator == 1 && info.has_generator == 1, "pair has both towers");
        CHECK(n * info.hidden_size == fx.n_hidden, "hidden size %u", info.hidden_size);
        CHECK(n * info.vocab_size == fx.n_gen, "vocab size %u", info.vocab_size);
        d = calloc(n, sizeof *d);
        d2 = calloc(n, sizeof *d2);
        h = calloc(fx.n_hidden, sizeof *h);
        g = calloc(fx.n_gen, sizeof *g);
        s = new_session(pair);
        CHECK(electra_session_discriminate(s, fx.ids, fx.mask, fx.types, fx.b, fx.t, d, n) == ELECTRA_OK, "%s",
              last_error());
        CHECK(electra_session_hidden_states(s, fx.ids, fx.mask, fx.types, fx.b, fx.t, h, fx.n_hidden) == ELECTRA_OK,
              "%s", last_error());
        CHECK(electra_session_generator_logits(s, fx.ids, fx.mask, fx.types, fx.b, fx.t, g, fx.n_gen) == ELECTRA_OK,
              "%s", last_error());
        snprintf(what, sizeof what, "%s disc_logits", c);
        compare(what, d, fx.disc_logits, n);
        snprintf(what, sizeof what, "%s disc_hidden", c);
        compare(what, h, fx.disc_hidden, fx.n_hidden);
        snprintf(what, sizeof what, "%s gen_logits", c);
        compare(what, g, fx.gen_logits, fx.n_gen);
        electra_session_free(s);

        /* The lone discriminator directory gives the same logits, and the session outlives it. */
        s = new_session(disc);
        electra_model_free(disc);
        CHECK(electra_session_discriminate(s, fx.ids, fx.mask, fx.types, fx.b, fx.t, d2, n) == ELECTRA_OK, "%s",
              last_error());
        CHECK(memcmp(d, d2, n * sizeof *d) == 0, "%s: lone discriminator differs from the pair", c);
        electra_session_free(s);
        electra_model_free(pair);
        free(d);
        free(d2);
        free(h);
        free(g);
        fixture_free(&fx);
    }
}

/* The load option "quantize": "int8": weight_format says int8, logits stay within 5% of the
 * f32 ones (and differ from them), hidden states too, and fine-tuning refuses the model. */
static void test_int8(void) {
    char path[1024];
    fixture fx;
    electra_model *q = NULL, *f;
    electra_session *sq, *sf;
    electra_model_info info;
    float *a, *b;
    size_t i, n;
    double worst = 0, top = 0;
    snprintf(path, sizeof path, "%s/emb_lt_hidden/discriminator", fixtures);
    if (!fixture_load("emb_lt_hidden", &fx)) {
        CHECK(0, "fixture emb_lt_hidden");
        fixture_free(&fx);
        return;
    }
    CHECK(electra_model_load_with_options(path, "{\"quantize\": \"int8\"}", &q) == ELECTRA_OK, "%s", last_error());
    f = load(path);
    if (!q || !f) {
        electra_model_free(q);
        electra_model_free(f);
        fixture_free(&fx);
        return;
    }
    info = get_info(q);
    CHECK(info.weight_format == ELECTRA_WEIGHTS_INT8, "weight_format %u", info.weight_format);
    info = get_info(f);
    CHECK(info.weight_format == ELECTRA_WEIGHTS_F32, "weight_format %u", info.weight_format);
    n = fx.b * fx.t;
    a = calloc(n, sizeof *a);
    b = calloc(n, sizeof *b);
    sq = new_session(q);
    sf = new_session(f);
    CHECK(electra_session_discriminate(sq, fx.ids, fx.mask, fx.types, fx.b, fx.t, a, n) == ELECTRA_OK, "%s",
          last_error());
    CHECK(electra_session_discriminate(sf, fx.ids, fx.mask, fx.types, fx.b, fx.t, b, n) == ELECTRA_OK, "%s",
          last_error());
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst) worst = d;
        if (fabs(b[i]) > top) top = fabs(b[i]);
    }
    CHECK(worst > 0 && worst < 0.05 * top, "int8 logits vs f32: max |diff| %g of %g", worst, top);
    snprintf(path, sizeof path, "%s/int8", tmp_root);
    CHECK(electra_model_save(q, path) == ELECTRA_OK, "save int8: %s", last_error());
    {
        electra_finetuner *ft = NULL;
        EXPECT(electra_finetuner_new(path, 2, NULL, &ft), ELECTRA_ERR_UNSUPPORTED, "int8");
        CHECK(ft == NULL, "no fine-tuner on failure");
    }
    {
        const char *files[] = {"discriminator/config.json", "discriminator/model.safetensors", "discriminator", ""};
        char p[1100];
        for (i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s", path, files[i]);
            remove(p);
        }
    }
    electra_session_free(sq);
    electra_session_free(sf);
    electra_model_free(q);
    electra_model_free(f);
    free(a);
    free(b);
    fixture_free(&fx);
}

static void test_info(electra_model *m) {
    electra_model_info info = get_info(m);
    unsigned char raw[96];
    uint32_t u;
    CHECK(info.struct_size == sizeof info, "struct_size");
    CHECK(info.vocab_size == 64 && info.hidden_size == 16 && info.embedding_size == 8, "dims");
    CHECK(info.max_position_embeddings == 32 && info.type_vocab_size == 2 && info.num_hidden_layers == 2, "dims");
    CHECK(info.generator_hidden_size == 4 && info.num_parameters > 0, "generator, parameters");
    CHECK(info.num_labels == 0, "no classification head");

    /* A smaller struct_size (an older caller) gets only that prefix. */
    memset(raw, 0xab, sizeof raw);
    u = 8;
    memcpy(raw, &u, 4);
    CHECK(electra_model_get_info(m, (electra_model_info *)(void *)raw) == ELECTRA_OK, "%s", last_error());
    memcpy(&u, raw + 4, 4);
    CHECK(u == 64, "vocab_size in the prefix: %u", u);
    CHECK(raw[8] == 0xab && raw[sizeof info - 1] == 0xab && raw[95] == 0xab, "bytes past struct_size untouched");

    memset(&info, 0, sizeof info);
    EXPECT(electra_model_get_info(m, &info), ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
    EXPECT(electra_model_get_info(m, NULL), ELECTRA_ERR_NULL_POINTER, "info");
    EXPECT(electra_model_get_info(NULL, &info), ELECTRA_ERR_INVALID_HANDLE, "NULL");
}

static void test_null_and_wrong_handles(electra_model *m) {
    int32_t ids[4] = {1, 2, 3, 4};
    float *out = sentinel_buffer(4 * 64);
    electra_model *mo = (electra_model *)&mo;
    electra_session *so = (electra_session *)&so;
    electra_session *s = new_session(m);
    run_fn fns[3];
    uint64_t zeros[8] = {0};
    int k;
    fns[0] = electra_session_discriminate;
    fns[1] = electra_session_generator_logits;
    fns[2] = electra_session_hidden_states;

    EXPECT(electra_model_load(NULL, &mo), ELECTRA_ERR_NULL_POINTER, "path");
    CHECK(mo == NULL, "*out is NULL after a failed load");
    EXPECT(electra_model_load(fixtures, NULL), ELECTRA_ERR_NULL_POINTER, "out");
    EXPECT(electra_session_new(NULL, &so), ELECTRA_ERR_INVALID_HANDLE, "electra_model is NULL");
    CHECK(so == NULL, "*out is NULL after a failed session_new");
    EXPECT(electra_session_new(m, NULL), ELECTRA_ERR_NULL_POINTER, "out");
    EXPECT(electra_model_save(NULL, "x"), ELECTRA_ERR_INVALID_HANDLE, "NULL");
    EXPECT(electra_model_save(m, NULL), ELECTRA_ERR_NULL_POINTER, "dir");
    for (k = 0; k < 3; k++) {
        EXPECT(fns[k](NULL, ids, NULL, NULL, 1, 4, out, 4 * 64), ELECTRA_ERR_INVALID_HANDLE, "NULL");
        EXPECT(fns[k](s, NULL, NULL, NULL, 1, 4, out, 4 * 64), ELECTRA_ERR_NULL_POINTER, "input_ids");
        EXPECT(fns[k](s, ids, NULL, NULL, 1, 4, NULL, 4 * 64), ELECTRA_ERR_NULL_POINTER, "out");
    }
    /* Handles of the wrong kind and foreign memory: looked up, never read (valgrind would see it). */
    EXPECT(electra_session_new((const electra_model *)(void *)s, &so), ELECTRA_ERR_INVALID_HANDLE,
           "not an electra_model");
    EXPECT(electra_session_discriminate((electra_session *)(void *)m, ids, NULL, NULL, 1, 4, out, 4),
           ELECTRA_ERR_INVALID_HANDLE, "not an electra_session");
    EXPECT(electra_session_new((const electra_model *)(void *)zeros, &so), ELECTRA_ERR_INVALID_HANDLE, "not a live");
    EXPECT(electra_trainer_save((electra_trainer *)(void *)m, "x"), ELECTRA_ERR_INVALID_HANDLE, "another kind");
    EXPECT(electra_finetuner_save((electra_finetuner *)(void *)s, "x"), ELECTRA_ERR_INVALID_HANDLE, "another kind");
    electra_model_free((electra_model *)(void *)s);   /* wrong kind: ignored */
    electra_session_free((electra_session *)(void *)m); /* wrong kind: ignored */
    electra_trainer_free((electra_trainer *)(void *)m);
    electra_trainer_free((electra_trainer *)(void *)s);
    electra_finetuner_free((electra_finetuner *)(void *)m);
    electra_finetuner_free((electra_finetuner *)(void *)s);
    CHECK(all_sentinel(out, 4 * 64), "failed calls wrote output");
    CHECK(electra_session_discriminate(s, ids, NULL, NULL, 1, 4, out, 4) == ELECTRA_OK, "still alive: %s",
          last_error());
    electra_model_free(NULL);
    electra_session_free(NULL);
    electra_session_free(s);
    free(out);
}

/* Calls fn on a sentinel buffer of out_len floats; expects `want` and an untouched buffer. */
static void reject_at(int line, run_fn fn, electra_session *s, const int32_t *ids, const int32_t *mask,
                      const int32_t *types, size_t b, size_t t, size_t out_len, electra_status want,
                      const char *needle) {
    float *out = sentinel_buffer(out_len + 1);
    expect_at(__FILE__, line, fn(s, ids, mask, types, b, t, out, out_len), want, needle);
    check_at(__FILE__, line, all_sentinel(out, out_len + 1), "untouched", "a failed call wrote into the output");
    free(out);
}
#define REJECT(...) reject_at(__LINE__, __VA_ARGS__)

static void test_bad_inputs(electra_model *m) {
    enum { B = 2, T = 5, N = B * T };
    int32_t ids[N], mask[N], types[N], bad[N], long_ids[33];
    electra_session *s = new_session(m);
    run_fn fns[3];
    size_t per_token[3] = {1, 64, 16};
    const electra_status INVALID = ELECTRA_ERR_INVALID_ARGUMENT, SMALL = ELECTRA_ERR_BUFFER_TOO_SMALL;
    int i, k;
    fns[0] = electra_session_discriminate;
    fns[1] = electra_session_generator_logits;
    fns[2] = electra_session_hidden_states;
    for (i = 0; i < N; i++) {
        ids[i] = i + 1;
        mask[i] = 1;
        types[i] = 0;
    }
    for (i = 0; i < 33; i++) long_ids[i] = 1;
    for (k = 0; k < 3; k++) {
        run_fn f = fns[k];
        size_t need = N * per_token[k];
        char msg[64];
        memcpy(bad, ids, sizeof bad);
        bad[7] = 64;
        REJECT(f, s, bad, mask, types, B, T, need, INVALID, "input_ids[7] = 64");
        bad[7] = -1;
        REJECT(f, s, bad, mask, types, B, T, need, INVALID, "input_ids[7] = -1");
        memcpy(bad, types, sizeof bad);
        bad[9] = 2;
        REJECT(f, s, ids, mask, bad, B, T, need, INVALID, "token_type_ids[9] = 2");
        bad[9] = -1;
        REJECT(f, s, ids, mask, bad, B, T, need, INVALID, "token_type_ids[9] = -1");
        memcpy(bad, mask, sizeof bad);
        bad[4] = 2;
        REJECT(f, s, ids, bad, types, B, T, need, INVALID, "attention_mask[4] = 2");
        bad[4] = -1;
        REJECT(f, s, ids, bad, types, B, T, need, INVALID, "must be 0 or 1");
        REJECT(f, s, long_ids, NULL, NULL, 1, 33, 33 * per_token[k], INVALID, "max_position_embeddings");
        REJECT(f, s, ids, NULL, NULL, 0, T, need, INVALID, "empty batch");
        REJECT(f, s, ids, NULL, NULL, B, 0, need, INVALID, "empty batch");
        REJECT(f, s, ids, NULL, NULL, SIZE_MAX / 2 + 1, 2, need, INVALID, "overflows");
        REJECT(f, s, ids, NULL, NULL, SIZE_MAX / 4, 2, need, INVALID, "too large");
        snprintf(msg, sizeof msg, "need %lu elements", (unsigned long)need);
        REJECT(f, s, ids, mask, types, B, T, need - 1, SMALL, msg);
        REJECT(f, s, ids, mask, types, B, T, 0, SMALL, msg);
    }
    electra_session_free(s);
}

static void test_unsupported(void) {
    int32_t ids[3] = {1, 2, 3};
    electra_model *disc = load_case("emb_lt_hidden", "discriminator");
    electra_model *gen = load_case("emb_lt_hidden", "generator");
    electra_session *s;
    if (!disc || !gen) return;
    s = new_session(disc);
    REJECT(electra_session_generator_logits, s, ids, NULL, NULL, 1, 3, 3 * 64, ELECTRA_ERR_UNSUPPORTED,
           "no generator");
    electra_session_free(s);
    s = new_session(gen);
    REJECT(electra_session_discriminate, s, ids, NULL, NULL, 1, 3, 3, ELECTRA_ERR_UNSUPPORTED, "no discriminator");
    electra_session_free(s);
    electra_model_free(disc);
    electra_model_free(gen);
}

/* Copies the fixture discriminator's files into tmp_root/name, returning the dir. */
static const char *damaged_copy(const char *name, const char *weights, size_t wlen, const char *config) {
    static char dir[1024];
    char path[1100];
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, name);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(write_file(path, weights, wlen), "write %s", path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(write_file(path, config, strlen(config)), "write %s", path);
    return dir;
}

static void remove_copy(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

static void expect_load_fails(const char *dir, electra_status want, const char *needle) {
    electra_model *m = (electra_model *)&m;
    EXPECT(electra_model_load(dir, &m), want, needle);
    CHECK(m == NULL, "*out is NULL after a failed load of %s", dir);
    electra_model_free(m);
}

static void test_files(void) {
    char path[1024], *weights, *config, *edited;
    const char *dir, *heads;
    size_t wlen, clen;
    snprintf(path, sizeof path, "%s/does-not-exist", tmp_root);
    expect_load_fails(path, ELECTRA_ERR_IO, "does-not-exist");
    expect_load_fails(tmp_root, ELECTRA_ERR_FORMAT, "config.json");

    snprintf(path, sizeof path, "%s/emb_lt_hidden/discriminator/model.safetensors", fixtures);
    weights = read_file(path, &wlen);
    snprintf(path, sizeof path, "%s/emb_lt_hidden/discriminator/config.json", fixtures);
    config = read_file(path, &clen);
    CHECK(weights && config, "read the fixture discriminator");
    if (!weights || !config) {
        free(weights);
        free(config);
        return;
    }
    /* The untouched copy loads (so the failures below are due to the damage). */
    dir = damaged_copy("intact", weights, wlen, config);
    electra_model_free(load(dir));
    remove_copy(dir);
    dir = damaged_copy("truncated-data", weights, wlen - 100, config);
    expect_load_fails(dir, ELECTRA_ERR_FORMAT, "model.safetensors");
    remove_copy(dir);
    dir = damaged_copy("truncated-header", weights, 40, config);
    expect_load_fails(dir, ELECTRA_ERR_FORMAT, "model.safetensors");
    remove_copy(dir);
    dir = damaged_copy("four-bytes", weights, 4, config);
    expect_load_fails(dir, ELECTRA_ERR_FORMAT, "model.safetensors");
    remove_copy(dir);

    /* The same files from memory: the model equals the one loaded from the path (same outputs,
       bit for bit); empty, truncated and NULL buffers fail with *out NULL. */
    {
        const uint8_t *w = (const uint8_t *)weights, *cfg = (const uint8_t *)config;
        int32_t ids[4] = {1, 2, 3, 4};
        float a[4], b[4];
        electra_model *fm = load_case("emb_lt_hidden", "discriminator"), *mm = (electra_model *)&mm;
        electra_session *fs = NULL, *ms = NULL;
        electra_status st = electra_model_load_from_memory(cfg, clen, w, wlen, NULL, &mm);
        CHECK(st == ELECTRA_OK && mm != NULL, "load from memory: %s", last_error());
        if (st == ELECTRA_OK && fm) {
            fs = new_session(fm);
            ms = new_session(mm);
            CHECK(fs && ms && electra_session_discriminate(fs, ids, NULL, NULL, 1, 4, a, 4) == ELECTRA_OK &&
                      electra_session_discriminate(ms, ids, NULL, NULL, 1, 4, b, 4) == ELECTRA_OK &&
                      memcmp(a, b, sizeof a) == 0,
                  "memory and path loads agree: %s", last_error());
            electra_session_free(fs);
            electra_session_free(ms);
            electra_model_free(mm);
        }
        electra_model_free(fm);
        mm = (electra_model *)&mm;
        EXPECT(electra_model_load_from_memory(cfg, clen, w, 0, NULL, &mm), ELECTRA_ERR_FORMAT, "model.safetensors");
        CHECK(mm == NULL, "*out is NULL after a failed load from memory");
        EXPECT(electra_model_load_from_memory(cfg, clen, w, wlen - 100, NULL, &mm), ELECTRA_ERR_FORMAT,
               "model.safetensors");
        EXPECT(electra_model_load_from_memory(cfg, 0, w, wlen, NULL, &mm), ELECTRA_ERR_FORMAT, "config.json");
        EXPECT(electra_model_load_from_memory(cfg, clen, NULL, wlen, NULL, &mm), ELECTRA_ERR_NULL_POINTER, "weights");
        EXPECT(electra_model_load_from_memory(NULL, clen, w, wlen, NULL, &mm), ELECTRA_ERR_NULL_POINTER, "config_json");
        EXPECT(electra_model_load_from_memory(cfg, clen, w, wlen, NULL, NULL), ELECTRA_ERR_NULL_POINTER, "out");
    }

    /* 16 hidden units over 3 heads. */
    heads = strstr(config, "\"num_attention_heads\": 2");
    CHECK(heads != NULL, "fixture config names its heads");
    if (heads) {
        edited = malloc(clen + 1);
        memcpy(edited, config, clen + 1);
        edited[(size_t)(heads - config) + strlen("\"num_attention_heads\": ")] = '3';
        dir = damaged_copy("heads", weights, wlen, edited);
        expect_load_fails(dir, ELECTRA_ERR_FORMAT, "num_attention_heads");
        remove_copy(dir);
        free(edited);
    }
    free(weights);
    free(config);
}

static void test_last_error(void) {
    char buf[64], full[1024];
    size_t n;
    electra_model *m;
    EXPECT(electra_model_load(NULL, &m), ELECTRA_ERR_NULL_POINTER, "path");
    n = electra_last_error_message(NULL, 0);
    CHECK(n > 8 && n < sizeof full, "length %lu", (unsigned long)n);
    CHECK(electra_last_error_message(full, sizeof full) == n && strlen(full) == n, "full copy");
    memset(buf, '#', sizeof buf);
    CHECK(electra_last_error_message(buf, 0) == n && buf[0] == '#', "cap 0 writes nothing");
    CHECK(electra_last_error_message(NULL, 100) == n, "NULL buffer: length only");
    CHECK(electra_last_error_message(buf, 1) == n && buf[0] == '\0' && buf[1] == '#', "cap 1: just the NUL");
    memset(buf, '#', sizeof buf);
    CHECK(electra_last_error_message(buf, 5) == n, "cap 5 returns the full length");
    CHECK(memcmp(buf, full, 4) == 0 && buf[4] == '\0' && buf[5] == '#', "cap 5: 4 bytes and a NUL");
    CHECK(electra_abi_version() == ELECTRA_ABI_VERSION, "a success");
    CHECK(electra_last_error_message(buf, sizeof buf) == n, "successes leave the message");
}

/* One model, several threads, each with its own session: identical results. */
typedef struct {
    const electra_model *model;
    const fixture *fx;
    const float *reference;
    int ok;
} thread_arg;

static void *thread_main(void *p) {
    thread_arg *a = p;
    electra_session *s = NULL;
    size_t n = a->fx->b * a->fx->t;
    float *out = calloc(n, sizeof *out);
    int i;
    a->ok = out && electra_session_new(a->model, &s) == ELECTRA_OK;
    for (i = 0; i < 10 && a->ok; i++) {
        a->ok = electra_session_discriminate(s, a->fx->ids, a->fx->mask, a->fx->types, a->fx->b, a->fx->t, out,
                                             n) == ELECTRA_OK &&
                memcmp(out, a->reference, n * sizeof *out) == 0;
    }
    electra_session_free(s);
    free(out);
    return NULL;
}

static void test_threads(void) {
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    thread_arg args[THREADS];
    fixture fx;
    electra_model *m;
    electra_session *s;
    float *ref;
    int i;
    if (!fixture_load("emb_eq_hidden", &fx)) {
        CHECK(0, "fixture");
        fixture_free(&fx);
        return;
    }
    m = load_case("emb_eq_hidden", NULL);
    ref = calloc(fx.b * fx.t, sizeof *ref);
    s = new_session(m);
    CHECK(electra_session_discriminate(s, fx.ids, fx.mask, fx.types, fx.b, fx.t, ref, fx.b * fx.t) == ELECTRA_OK,
          "%s", last_error());
    electra_session_free(s);
    for (i = 0; i < THREADS; i++) {
        args[i].model = m;
        args[i].fx = &fx;
        args[i].reference = ref;
        args[i].ok = 0;
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0, "pthread_create");
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].ok, "thread %d: results differ or a call failed", i);
    }
    electra_model_free(m);
    free(ref);
    fixture_free(&fx);
}

/* Stale handles: use after free, double free, a freed address reused, made-up integers. All are
 * ELECTRA_ERR_INVALID_HANDLE without reading memory (handles are registry ids, not addresses). */
static void test_stale_handles(void) {
    int32_t ids[4] = {1, 2, 3, 4};
    float *out = sentinel_buffer(4);
    electra_model *m = load_case("emb_lt_hidden", NULL), *m2;
    electra_session *s = m ? new_session(m) : NULL, *so = NULL;
    uintptr_t bogus[4];
    int k;
    if (!s) {
        electra_model_free(m);
        free(out);
        return;
    }
    electra_session_free(s);
    EXPECT(electra_session_discriminate(s, ids, NULL, NULL, 1, 4, out, 4), ELECTRA_ERR_INVALID_HANDLE,
           "not a live electra_session");
    electra_session_free(s); /* double free: a no-op */
    electra_model_free(m);
    EXPECT(electra_session_new(m, &so), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
    CHECK(so == NULL, "*out is NULL after a failed session_new");
    electra_model_free(m);
    m2 = load_case("emb_lt_hidden", NULL); /* may reuse the freed memory: the old handle stays dead */
    CHECK(m2 != m, "a handle value is never reused");
    EXPECT(electra_model_save(m, tmp_root), ELECTRA_ERR_INVALID_HANDLE, "not a live electra_model");
    bogus[0] = 1;
    bogus[1] = 4096;
    bogus[2] = (uintptr_t)(void *)out;
    bogus[3] = (uintptr_t)(void *)m2 + 1;
    for (k = 0; k < 4; k++) {
        EXPECT(electra_session_discriminate((electra_session *)bogus[k], ids, NULL, NULL, 1, 4, out, 4),
               ELECTRA_ERR_INVALID_HANDLE, "not a live electra_session");
        electra_session_free((electra_session *)bogus[k]);
        electra_model_free((electra_model *)bogus[k]);
    }
    CHECK(all_sentinel(out, 4), "failed calls wrote output");
    electra_model_free(m2);
    free(out);
}

/* A trainer freed by the main thread while another thread steps it: the step in flight finishes,
 * the next one is ELECTRA_ERR_INVALID_HANDLE, nothing crashes or reads freed memory. */
typedef struct {
    electra_trainer *t;
    volatile int steps;
    electra_status last;
} stepper_arg;

static void *stepper_main(void *p) {
    stepper_arg *a = p;
    int32_t ids[64];
    int i;
    for (i = 0; i < 64; i++) ids[i] = 5 + (i * 7) % 50;
    for (;;) {
        electra_status st = electra_trainer_step(a->t, ids, NULL, NULL, 4, 16, NULL);
        if (st != ELECTRA_OK) {
            a->last = st;
            return NULL;
        }
        __atomic_add_fetch(&a->steps, 1, __ATOMIC_SEQ_CST);
    }
}

static void test_free_while_in_use(void) {
    stepper_arg a;
    pthread_t th;
    electra_trainer *t = NULL;
    electra_status st = electra_trainer_new(
        "tiny", "{\"vocab_size\": 64, \"max_seq_len\": 16, \"threads\": 1, \"mask_token_id\": 4}", &t);
    CHECK(st == ELECTRA_OK, "trainer_new: %s", last_error());
    if (st != ELECTRA_OK) return;
    a.t = t;
    a.steps = 0;
    a.last = ELECTRA_OK;
    CHECK(pthread_create(&th, NULL, stepper_main, &a) == 0, "pthread_create");
    while (__atomic_load_n(&a.steps, __ATOMIC_SEQ_CST) < 2) sched_yield();
    electra_trainer_free(t);
    pthread_join(th, NULL);
    CHECK(a.last == ELECTRA_ERR_INVALID_HANDLE, "the stepper ended with %s", electra_status_str(a.last));
    electra_trainer_free(t); /* double free after a free in flight: a no-op */
}

/* Devices: the CPU is always one; CUDA is counted or refused with ELECTRA_ERR_CUDA; a session
 * on the CPU with options gives the default session's logits bit for bit; an absent device is
 * ELECTRA_ERR_CUDA and a bad name an invalid argument. */
static void test_devices(electra_model *m) {
    size_t n = 99, len = 0;
    electra_session *s = NULL, *d = NULL;
    int32_t ids[6] = {2, 17, 33, 9, 41, 3};
    float a[6], b[6];
    electra_status st;
    CHECK(electra_device_count(ELECTRA_DEVICE_CPU, &n) == ELECTRA_OK && n == 1, "one CPU: %zu", n);
    n = 99;
    st = electra_device_count(ELECTRA_DEVICE_CUDA, &n);
    CHECK(st == ELECTRA_OK || (st == ELECTRA_ERR_CUDA && n == 0 && electra_last_error_message(NULL, 0) > 0),
          "CUDA count: %s, %zu", electra_status_str(st), n);
    EXPECT(electra_device_count(9, &n), ELECTRA_ERR_INVALID_ARGUMENT, "unknown device kind");
    EXPECT(electra_device_count(ELECTRA_DEVICE_CPU, NULL), ELECTRA_ERR_NULL_POINTER, "count");

    CHECK(electra_session_new(m, &s) == ELECTRA_OK, "default session: %s", last_error());
    CHECK(electra_session_new_with_options(m, "{\"device\": \"cpu\", \"threads\": 1}", &d) == ELECTRA_OK,
          "session on the CPU with 1 thread: %s", last_error());
    if (s && d) {
        CHECK(electra_session_discriminate(s, ids, NULL, NULL, 1, 6, a, 6) == ELECTRA_OK, "%s", last_error());
        CHECK(electra_session_discriminate(d, ids, NULL, NULL, 1, 6, b, 6) == ELECTRA_OK, "%s", last_error());
        CHECK(memcmp(a, b, sizeof a) == 0, "the thread count changes no bit");
    }
    electra_session_free(d);
    d = (electra_session *)(void *)&len; /* garbage the call must overwrite */
    EXPECT(electra_session_new_with_options(m, "{\"device\": \"tpu\"}", &d), ELECTRA_ERR_INVALID_ARGUMENT, "device");
    CHECK(d == NULL, "*out is NULL after a failed create");
    if (st != ELECTRA_OK || n == 0) {
        EXPECT(electra_session_new_with_options(m, "{\"device\": \"cuda:0\"}", &d), ELECTRA_ERR_CUDA, "");
        CHECK(d == NULL, "*out is NULL after a failed create");
    }
    electra_session_free(s);
}
/* ---------------------------------------------------------------------------------------------
 * Text calls (tokenizers, embeddings, classification, detection, fill-mask, label names) on a
 * copy of the emb_eq_hidden pair (vocabulary of 50, 24 positions) with a vocab.txt of 20 entries
 * beside its discriminator, and on a 2-label classifier made from it (electra_finetuner_save).
 */

static const char TEXT_VOCAB[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\na\nwhale\nship\nsea\nswam\nin\n"
                                 "white\ncaptain\nsold\n.\n,\n##s\nwhales\nsank\n";
#define TEXT_VOCAB_SIZE 20

static int copy_file(const char *from, const char *to) {
    size_t len;
    char *bytes = read_file(from, &len);
    int ok = bytes != NULL && write_file(to, bytes, len);
    free(bytes);
    return ok;
}

/* Removes a directory tree made by this test (regular files and directories only). */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1100];
    struct stat sb;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static electra_text text_of(const char *s) {
    electra_text t;
    t.data = s;
    t.len = strlen(s);
    return t;
}

static electra_session *text_session(const electra_model *m) {
    electra_session *s = NULL;
    CHECK(electra_session_new_with_options(m, "{\"threads\": 1}", &s) == ELECTRA_OK, "session: %s", last_error());
    return s;
}

/* The tokenizer's own calls: info, encode (size queries, short buffers, bad UTF-8, NULs, empty
 * and over-long texts, pairs), decode and the vocabulary lookups. */
static void test_text_tokenizer(electra_tokenizer *t, const char *vocab_path) {
    electra_tokenizer_info ti;
    electra_encode_params ep = electra_encode_default_params();
    electra_tokenizer *ft = (electra_tokenizer *)&ti;
    electra_text ts[3];
    const char bad[] = {'t', 'h', (char)0xff, 'e'};
    const char nul[] = {'t', 'h', 'e', '\0', ' ', 'w', 'h', 'a', 'l', 'e'};
    int32_t ids[64], mask[64], types[64], id = 7;
    uint32_t offsets[128];
    size_t seq_len = 99, len = 99, i;
    char buf[64];

    memset(&ti, 0, sizeof ti);
    ti.struct_size = sizeof ti;
    CHECK(electra_tokenizer_get_info(t, &ti) == ELECTRA_OK, "get_info: %s", last_error());
    CHECK(ti.vocab_size == TEXT_VOCAB_SIZE && ti.pad_id == 0 && ti.unk_id == 1 && ti.cls_id == 2 && ti.sep_id == 3 &&
              ti.mask_id == 4,
          "info: vocab %u, ids %d %d %d %d %d", ti.vocab_size, ti.pad_id, ti.unk_id, ti.cls_id, ti.sep_id, ti.mask_id);
    ti.struct_size = 0;
    EXPECT(electra_tokenizer_get_info(t, &ti), ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
    EXPECT(electra_tokenizer_get_info(t, NULL), ELECTRA_ERR_NULL_POINTER, "info");

    /* Loading: a vocab.txt file equals the model's; bad paths leave *out NULL. */
    CHECK(electra_tokenizer_load(vocab_path, &ft) == ELECTRA_OK && ft != NULL, "load %s: %s", vocab_path, last_error());
    electra_tokenizer_free(ft);
    ft = (electra_tokenizer *)&ti;
    EXPECT(electra_tokenizer_load("tests/c/no-such-vocab.txt", &ft), ELECTRA_ERR_IO, "no-such-vocab.txt");
    CHECK(ft == NULL, "*out is NULL after a failed load");
    EXPECT(electra_tokenizer_load(NULL, &ft), ELECTRA_ERR_NULL_POINTER, "path");
    EXPECT(electra_tokenizer_load(vocab_path, NULL), ELECTRA_ERR_NULL_POINTER, "out");
    ft = (electra_tokenizer *)&ti;
    EXPECT(electra_tokenizer_load_from_memory((const uint8_t *)"{", 1, &ft), ELECTRA_ERR_FORMAT, "");
    CHECK(ft == NULL, "*out is NULL after a failed load from memory");
    EXPECT(electra_tokenizer_load_from_memory(NULL, 5, &ft), ELECTRA_ERR_NULL_POINTER, "json");

    /* Size query, then the call: "[CLS] the whale [SEP]" and "[CLS] the whale ##s ... ". */
    ts[0] = text_of("the whale");
    ts[1] = text_of("The whales sank.");
    CHECK(electra_tokenizer_encode(t, ts, NULL, 2, NULL, NULL, NULL, NULL, NULL, 0, &seq_len) == ELECTRA_OK,
          "size query: %s", last_error());
    CHECK(seq_len == 6, "seq_len %zu", seq_len);
    for (i = 0; i < 64; i++) ids[i] = mask[i] = types[i] = -7;
    for (i = 0; i < 128; i++) offsets[i] = 777;
    EXPECT(electra_tokenizer_encode(t, ts, NULL, 2, NULL, ids, mask, types, offsets, 11, &seq_len),
           ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    CHECK(seq_len == 6 && ids[0] == -7 && mask[0] == -7 && types[0] == -7 && offsets[0] == 777,
          "a short buffer reports the size and writes nothing");
    CHECK(electra_tokenizer_encode(t, ts, NULL, 2, NULL, ids, mask, types, offsets, 12, &seq_len) == ELECTRA_OK,
          "encode: %s", last_error());
    CHECK(ids[0] == 2 && ids[1] == 5 && ids[2] == 7 && ids[3] == 3 && ids[4] == 0 && ids[5] == 0,
          "row 0: %d %d %d %d %d %d", ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
    CHECK(mask[3] == 1 && mask[4] == 0 && types[3] == 0 && ids[12] == -7, "mask and types, nothing past 12");
    CHECK(ids[6] == 2 && ids[7] == 5 && ids[8] == 18 && ids[9] == 19 && ids[10] == 15 && ids[11] == 3,
          "row 1: %d %d %d %d %d %d", ids[6], ids[7], ids[8], ids[9], ids[10], ids[11]);
    CHECK(offsets[2] == 0 && offsets[3] == 3 && offsets[4] == 4 && offsets[5] == 9 && offsets[0] == 0 &&
              offsets[1] == 0,
          "byte offsets of row 0");

    /* Bad UTF-8: INVALID_ARGUMENT naming the text and byte, nothing written. */
    for (i = 0; i < 64; i++) ids[i] = -7;
    ts[1].data = bad;
    ts[1].len = sizeof bad;
    seq_len = 99;
    EXPECT(electra_tokenizer_encode(t, ts, NULL, 2, NULL, ids, NULL, NULL, NULL, 64, &seq_len),
           ELECTRA_ERR_INVALID_ARGUMENT, "texts[1]");
    CHECK(ids[0] == -7 && seq_len == 99, "nothing written on bad UTF-8");
    ts[1].data = NULL;
    ts[1].len = 3;
    EXPECT(electra_tokenizer_encode(t, ts, NULL, 2, NULL, ids, NULL, NULL, NULL, 64, &seq_len),
           ELECTRA_ERR_NULL_POINTER, "");
    EXPECT(electra_tokenizer_encode(t, NULL, NULL, 1, NULL, ids, NULL, NULL, NULL, 64, &seq_len),
           ELECTRA_ERR_NULL_POINTER, "texts");
    EXPECT(electra_tokenizer_encode(t, ts, NULL, 1, NULL, ids, NULL, NULL, NULL, 64, NULL), ELECTRA_ERR_NULL_POINTER,
           "seq_len");
    EXPECT(electra_tokenizer_encode(NULL, ts, NULL, 1, NULL, ids, NULL, NULL, NULL, 64, &seq_len),
           ELECTRA_ERR_INVALID_HANDLE, "");
    ep.struct_size = 0;
    EXPECT(electra_tokenizer_encode(t, ts, NULL, 1, &ep, ids, NULL, NULL, NULL, 64, &seq_len),
           ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(ids[0] == -7, "nothing written on bad params");

    /* An embedded NUL is a character the normalizer drops; an empty text (NULL, 0) is
       [CLS] [SEP]; a pair has token types 0 then 1; max_length cuts. */
    ts[0].data = nul;
    ts[0].len = sizeof nul;
    CHECK(electra_tokenizer_encode(t, ts, NULL, 1, NULL, ids, NULL, NULL, NULL, 64, &seq_len) == ELECTRA_OK &&
              seq_len == 4 && ids[1] == 5 && ids[2] == 7,
          "embedded NUL: %zu tokens, %s", seq_len, last_error());
    ts[0].data = NULL;
    ts[0].len = 0;
    CHECK(electra_tokenizer_encode(t, ts, NULL, 1, NULL, ids, NULL, NULL, NULL, 64, &seq_len) == ELECTRA_OK &&
              seq_len == 2 && ids[0] == 2 && ids[1] == 3,
          "empty text: %zu tokens, %s", seq_len, last_error());
    ts[0] = text_of("the whale");
    ts[1] = text_of("a ship");
    CHECK(electra_tokenizer_encode(t, ts, ts + 1, 1, NULL, ids, NULL, types, NULL, 64, &seq_len) == ELECTRA_OK &&
              seq_len == 7 && types[3] == 0 && types[4] == 1 && types[6] == 1 && ids[6] == 3,
          "pair: %zu tokens, %s", seq_len, last_error());
    ep = electra_encode_default_params();
    ep.max_length = 3;
    ts[0] = text_of("the white whale swam in the sea");
    CHECK(electra_tokenizer_encode(t, ts, NULL, 1, &ep, ids, NULL, NULL, NULL, 64, &seq_len) == ELECTRA_OK &&
              seq_len == 3 && ids[0] == 2 && ids[1] == 5 && ids[2] == 3,
          "max_length 3: %zu tokens, %s", seq_len, last_error());

    /* decode: size query, short buffer, the text; lookups. */
    ids[0] = 2;
    ids[1] = 5;
    ids[2] = 7;
    ids[3] = 17;
    ids[4] = 3;
    CHECK(electra_tokenizer_decode(t, ids, 5, 1, NULL, 0, &len) == ELECTRA_OK && len == 10, "decode length %zu: %s",
          len, last_error());
    memset(buf, '#', sizeof buf);
    len = 0;
    EXPECT(electra_tokenizer_decode(t, ids, 5, 1, buf, 10, &len), ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    CHECK(len == 10 && buf[0] == '#', "a short buffer reports the length and writes nothing");
    CHECK(electra_tokenizer_decode(t, ids, 5, 1, buf, 11, &len) == ELECTRA_OK && strcmp(buf, "the whales") == 0,
          "decode: \"%s\"", buf);
    CHECK(electra_tokenizer_decode(t, ids, 5, 0, buf, sizeof buf, &len) == ELECTRA_OK &&
              strcmp(buf, "[CLS] the whales [SEP]") == 0,
          "decode with special tokens: \"%s\"", buf);
    EXPECT(electra_tokenizer_decode(t, ids, 1, 0, buf, sizeof buf, NULL), ELECTRA_ERR_NULL_POINTER, "len");
    ids[0] = TEXT_VOCAB_SIZE;
    EXPECT(electra_tokenizer_decode(t, ids, 1, 0, buf, sizeof buf, &len), ELECTRA_ERR_INVALID_ARGUMENT,
           "outside the vocabulary");
    CHECK(electra_tokenizer_token_to_id(t, "[MASK]", 6, &id) == ELECTRA_OK && id == 4, "[MASK] is %d", id);
    CHECK(electra_tokenizer_token_to_id(t, "##s", 3, &id) == ELECTRA_OK && id == 17, "##s is %d", id);
    CHECK(electra_tokenizer_token_to_id(t, "kraken", 6, &id) == ELECTRA_OK && id == -1, "kraken is %d", id);
    EXPECT(electra_tokenizer_token_to_id(t, "x", 1, NULL), ELECTRA_ERR_NULL_POINTER, "id");
    memset(buf, '#', sizeof buf);
    EXPECT(electra_tokenizer_id_to_token(t, 7, buf, 5, &len), ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    CHECK(len == 5 && buf[0] == '#', "id_to_token: a short buffer reports the length (%zu)", len);
    CHECK(electra_tokenizer_id_to_token(t, 7, buf, 6, &len) == ELECTRA_OK && strcmp(buf, "whale") == 0,
          "id 7 is \"%s\"", buf);
    EXPECT(electra_tokenizer_id_to_token(t, -1, buf, sizeof buf, &len), ELECTRA_ERR_INVALID_ARGUMENT, "");
}

/* The session calls on the pair model: embeddings, detection and fill-mask, with their errors. */
static void test_text_session(electra_model *m, electra_session *s, electra_tokenizer *t) {
    electra_model_info info = get_info(m);
    size_t h = info.hidden_size, i, n = 99;
    electra_text_params p = electra_text_default_params(), bad_p;
    electra_text ts[3];
    const char bad[] = {'t', 'h', (char)0xff, 'e'};
    const char nul[] = {'t', 'h', 'e', '\0', ' ', 'w', 'h', 'a', 'l', 'e'};
    char *long_text;
    float *a = sentinel_buffer(3 * h), *b = sentinel_buffer(3 * h);
    electra_word_score words[16];
    electra_token_score cands[64];
    double norm;
    const char *sentence = "the white whale, in the sea";

    /* Embeddings: the model's own tokenizer (t NULL) and the handle give the same rows; rows of
       a batch equal the texts one at a time; normalize gives unit rows. */
    ts[0] = text_of("the whale swam in the sea");
    ts[1] = text_of("a white whale");
    ts[2] = text_of("the captain sold the ship");
    CHECK(electra_session_embed_texts(s, NULL, ts, 3, NULL, a, 3 * h) == ELECTRA_OK, "embed: %s", last_error());
    CHECK(electra_session_embed_texts(s, t, ts, 3, &p, b, 3 * h) == ELECTRA_OK, "embed with t: %s", last_error());
    CHECK(memcmp(a, b, 3 * h * sizeof *a) == 0, "the model's tokenizer and its handle agree");
    for (i = 0; i < 3; i++) {
        CHECK(electra_session_embed_texts(s, t, ts + i, 1, &p, b, h) == ELECTRA_OK, "embed one: %s", last_error());
        compare("embedding of one text vs the batch", b, a + i * h, h);
    }
    p.normalize = 1;
    CHECK(electra_session_embed_texts(s, NULL, ts, 3, &p, b, 3 * h) == ELECTRA_OK, "normalized: %s", last_error());
    for (i = 0, norm = 0; i < h; i++) norm += (double)b[h + i] * b[h + i];
    CHECK(fabs(norm - 1) < 1e-5, "normalized row has norm^2 %f", norm);
    p = electra_text_default_params();
    p.pooling = ELECTRA_POOLING_CLS;
    CHECK(electra_session_embed_texts(s, NULL, ts, 1, &p, b, h) == ELECTRA_OK && memcmp(a, b, h * sizeof *a) != 0,
          "CLS pooling differs from the mean: %s", last_error());

    /* Errors write nothing. */
    for (i = 0; i < 3 * h; i++) b[i] = SENTINEL;
    EXPECT(electra_session_embed_texts(s, NULL, ts, 3, NULL, b, 3 * h - 1), ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    ts[1].data = bad;
    ts[1].len = sizeof bad;
    EXPECT(electra_session_embed_texts(s, NULL, ts, 3, NULL, b, 3 * h), ELECTRA_ERR_INVALID_ARGUMENT,
           "texts[1] is not valid UTF-8");
    ts[1] = text_of("a white whale");
    EXPECT(electra_session_embed_texts(s, NULL, NULL, 3, NULL, b, 3 * h), ELECTRA_ERR_NULL_POINTER, "texts");
    EXPECT(electra_session_embed_texts(s, NULL, ts, 3, NULL, NULL, 3 * h), ELECTRA_ERR_NULL_POINTER, "");
    EXPECT(electra_session_embed_texts(s, NULL, ts, 0, NULL, b, 3 * h), ELECTRA_ERR_INVALID_ARGUMENT, "no texts");
    EXPECT(electra_session_embed_texts(NULL, NULL, ts, 3, NULL, b, 3 * h), ELECTRA_ERR_INVALID_HANDLE, "");
    EXPECT(electra_session_embed_texts(s, (electra_tokenizer *)s, ts, 3, NULL, b, 3 * h), ELECTRA_ERR_INVALID_HANDLE,
           "");
    bad_p = electra_text_default_params();
    bad_p.struct_size = 0;
    EXPECT(electra_session_embed_texts(s, NULL, ts, 3, &bad_p, b, 3 * h), ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
    bad_p = electra_text_default_params();
    bad_p.max_length = 25;
    EXPECT(electra_session_embed_texts(s, NULL, ts, 3, &bad_p, b, 3 * h), ELECTRA_ERR_INVALID_ARGUMENT,
           "max_position_embeddings");
    bad_p = electra_text_default_params();
    bad_p.pooling = 7;
    EXPECT(electra_session_embed_texts(s, NULL, ts, 3, &bad_p, b, 3 * h), ELECTRA_ERR_INVALID_ARGUMENT, "pooling");
    CHECK(all_sentinel(b, 3 * h), "nothing written on any error");

    /* A text longer than the 24 positions is cut; an empty one and one with a NUL embed. */
    long_text = malloc(6 * 5000 + 1);
    for (i = 0; i < 5000; i++) memcpy(long_text + 6 * i, "whale ", 6);
    long_text[6 * 5000] = '\0';
    ts[0] = text_of(long_text);
    ts[1].data = NULL;
    ts[1].len = 0;
    ts[2].data = nul;
    ts[2].len = sizeof nul;
    CHECK(electra_session_embed_texts(s, NULL, ts, 3, NULL, b, 3 * h) == ELECTRA_OK, "long, empty, NUL: %s",
          last_error());
    for (i = 0; i < 3 * h && isfinite(b[i]); i++) {}
    CHECK(i == 3 * h, "finite embeddings");
    ts[0] = text_of("the whale");
    CHECK(electra_session_embed_texts(s, NULL, ts, 1, NULL, a, h) == ELECTRA_OK, "embed: %s", last_error());
    compare("\"the\\0 whale\" (in a batch) vs \"the whale\"", b + 2 * h, a, h);

    /* Detection: size query, short buffer, the words with their byte spans. */
    n = 99;
    CHECK(electra_session_detect_text(s, NULL, sentence, strlen(sentence), NULL, NULL, 0, &n) == ELECTRA_OK && n == 7,
          "detect size query: %zu words, %s", n, last_error());
    for (i = 0; i < 16; i++) words[i].score = SENTINEL;
    EXPECT(electra_session_detect_text(s, NULL, sentence, strlen(sentence), NULL, words, 6, &n),
           ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    CHECK(n == 7 && words[0].score == SENTINEL, "a short buffer reports the count and writes nothing");
    CHECK(electra_session_detect_text(s, t, sentence, strlen(sentence), NULL, words, 16, &n) == ELECTRA_OK && n == 7,
          "detect: %s", last_error());
    CHECK(words[0].start == 0 && words[0].end == 3 && words[2].start == 10 && words[2].end == 15 &&
              words[3].start == 15 && words[3].end == 16 && words[6].end == strlen(sentence),
          "spans: [%u, %u) [%u, %u) [%u, %u)", words[0].start, words[0].end, words[2].start, words[2].end,
          words[3].start, words[3].end);
    for (i = 0; i < 7 && words[i].score >= 0 && words[i].score <= 1; i++) {}
    CHECK(i == 7 && words[7].score == SENTINEL, "scores are probabilities, nothing past n");
    words[0].score = SENTINEL;
    n = 99;
    EXPECT(electra_session_detect_text(s, NULL, bad, sizeof bad, NULL, words, 16, &n), ELECTRA_ERR_INVALID_ARGUMENT,
           "UTF-8");
    CHECK(words[0].score == SENTINEL, "nothing written on bad UTF-8");
    EXPECT(electra_session_detect_text(s, NULL, sentence, strlen(sentence), NULL, words, 16, NULL),
           ELECTRA_ERR_NULL_POINTER, "n_words");
    EXPECT(electra_session_detect_text(s, NULL, NULL, 4, NULL, words, 16, &n), ELECTRA_ERR_NULL_POINTER, "");
    bad_p.pooling = ELECTRA_POOLING_MEAN;
    bad_p.struct_size = 0;
    EXPECT(electra_session_detect_text(s, NULL, sentence, strlen(sentence), &bad_p, words, 16, &n),
           ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");
    EXPECT(electra_session_detect_text(NULL, NULL, sentence, strlen(sentence), NULL, words, 16, &n),
           ELECTRA_ERR_INVALID_HANDLE, "");
    CHECK(electra_session_detect_text(s, NULL, NULL, 0, NULL, NULL, 0, &n) == ELECTRA_OK && n == 0,
          "empty text: %zu words, %s", n, last_error());
    CHECK(electra_session_detect_text(s, NULL, long_text, strlen(long_text), NULL, NULL, 0, &n) == ELECTRA_OK &&
              n == 22,
          "a long text is cut to 22 words ([CLS] and [SEP] in 24 positions): %zu, %s", n, last_error());

    /* Fill-mask: size query, short buffer, candidates best first. */
    sentence = "the [MASK] swam in the [MASK].";
    n = 99;
    CHECK(electra_session_fill_mask_text(s, NULL, sentence, strlen(sentence), 3, NULL, NULL, 0, &n) == ELECTRA_OK &&
              n == 2,
          "fill-mask size query: %zu masks, %s", n, last_error());
    for (i = 0; i < 64; i++) cands[i].score = SENTINEL;
    EXPECT(electra_session_fill_mask_text(s, NULL, sentence, strlen(sentence), 3, NULL, cands, 5, &n),
           ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    CHECK(n == 2 && cands[0].score == SENTINEL, "a short buffer reports the masks and writes nothing");
    CHECK(electra_session_fill_mask_text(s, t, sentence, strlen(sentence), 3, NULL, cands, 6, &n) == ELECTRA_OK,
          "fill-mask: %s", last_error());
    CHECK(cands[0].score >= cands[1].score && cands[1].score >= cands[2].score && cands[0].score <= 1 &&
              cands[2].score > 0 && cands[3].score >= cands[4].score && cands[6].score == SENTINEL,
          "best first: %f %f %f", cands[0].score, cands[1].score, cands[2].score);
    for (i = 0; i < 6 && cands[i].id >= 0 && cands[i].id < (int32_t)info.vocab_size; i++) {}
    CHECK(i == 6, "candidate ids in the vocabulary");
    CHECK(electra_session_fill_mask_text(s, NULL, sentence, strlen(sentence), 1000, NULL, NULL, 0, &n) == ELECTRA_OK,
          "top_k 1000: %s", last_error());
    sentence = "the whale swam";
    EXPECT(electra_session_fill_mask_text(s, NULL, sentence, strlen(sentence), 3, NULL, cands, 64, &n),
           ELECTRA_ERR_INVALID_ARGUMENT, "[MASK]");
    EXPECT(electra_session_fill_mask_text(s, NULL, bad, sizeof bad, 3, NULL, cands, 64, &n),
           ELECTRA_ERR_INVALID_ARGUMENT, "UTF-8");
    EXPECT(electra_session_fill_mask_text(s, NULL, "[MASK]", 6, 3, NULL, cands, 64, NULL), ELECTRA_ERR_NULL_POINTER,
           "n_masks");
    EXPECT(electra_session_fill_mask_text(s, NULL, "[MASK]", 6, 3, &bad_p, cands, 64, &n),
           ELECTRA_ERR_INVALID_ARGUMENT, "struct_size");

    /* The pair has no classifier. */
    EXPECT(electra_session_classify_texts(s, NULL, ts, NULL, 1, NULL, a, h), ELECTRA_ERR_UNSUPPORTED, "");
    EXPECT(electra_model_label_name(m, 0, NULL, 0, &n), ELECTRA_ERR_UNSUPPORTED, "");
    free(long_text);
    free(a);
    free(b);
}

/* A classifier: probabilities, pairs, label names; it has no generator for fill-mask. */
static void test_text_classifier(const char *dir) {
    electra_model *c = load(dir);
    electra_session *s;
    electra_model_info info;
    electra_text ts[2], ps[2];
    float probs[4], more[4];
    const char bad[] = {'t', 'h', (char)0xff, 'e'};
    char name[32];
    size_t len = 99, n;
    if (!c) return;
    info = get_info(c);
    CHECK(info.num_labels == 2, "2 labels: %u", info.num_labels);
    s = text_session(c);
    ts[0] = text_of("the whale swam in the sea");
    ts[1] = text_of("the captain sold the ship");
    ps[0] = text_of("a whale");
    ps[1] = text_of("a ship");
    CHECK(electra_session_classify_texts(s, NULL, ts, NULL, 2, NULL, probs, 4) == ELECTRA_OK, "classify: %s",
          last_error());
    CHECK(fabsf(probs[0] + probs[1] - 1) < 1e-5f && fabsf(probs[2] + probs[3] - 1) < 1e-5f && probs[0] > 0 &&
              probs[3] > 0,
          "softmax rows: %f %f, %f %f", probs[0], probs[1], probs[2], probs[3]);
    CHECK(electra_session_classify_texts(s, NULL, ts, ps, 2, NULL, more, 4) == ELECTRA_OK &&
              fabsf(more[0] + more[1] - 1) < 1e-5f && memcmp(probs, more, sizeof probs) != 0,
          "pairs: %s", last_error());
    more[0] = more[1] = more[2] = more[3] = SENTINEL;
    EXPECT(electra_session_classify_texts(s, NULL, ts, NULL, 2, NULL, more, 3), ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    ts[1].data = bad;
    ts[1].len = sizeof bad;
    EXPECT(electra_session_classify_texts(s, NULL, ts, NULL, 2, NULL, more, 4), ELECTRA_ERR_INVALID_ARGUMENT,
           "texts[1]");
    ps[1].data = bad;
    ps[1].len = sizeof bad;
    EXPECT(electra_session_classify_texts(s, NULL, ps, ps, 2, NULL, more, 4), ELECTRA_ERR_INVALID_ARGUMENT, "UTF-8");
    EXPECT(electra_session_classify_texts(s, NULL, NULL, NULL, 2, NULL, more, 4), ELECTRA_ERR_NULL_POINTER, "texts");
    CHECK(all_sentinel(more, 4), "nothing written on any error");

    /* Label names: size query, short buffer, the name; past num_labels is refused. */
    CHECK(electra_model_label_name(c, 1, NULL, 0, &len) == ELECTRA_OK && len == 7, "label 1 length %zu: %s", len,
          last_error());
    memset(name, '#', sizeof name);
    EXPECT(electra_model_label_name(c, 1, name, 7, &len), ELECTRA_ERR_BUFFER_TOO_SMALL, "");
    CHECK(len == 7 && name[0] == '#', "a short buffer reports the length and writes nothing");
    CHECK(electra_model_label_name(c, 1, name, 8, &len) == ELECTRA_OK && strcmp(name, "LABEL_1") == 0,
          "label 1 is \"%s\"", name);
    EXPECT(electra_model_label_name(c, 2, name, sizeof name, &len), ELECTRA_ERR_INVALID_ARGUMENT, "");
    EXPECT(electra_model_label_name(c, 0, name, sizeof name, NULL), ELECTRA_ERR_NULL_POINTER, "len");
    EXPECT(electra_model_label_name(NULL, 0, name, sizeof name, &len), ELECTRA_ERR_INVALID_HANDLE, "");

    EXPECT(electra_session_detect_text(s, NULL, "whale", 5, NULL, NULL, 0, &n), ELECTRA_ERR_UNSUPPORTED, "");
    /* No generator: no fill-mask; embeddings come from the classifier's encoder. */
    EXPECT(electra_session_fill_mask_text(s, NULL, "[MASK]", 6, 3, NULL, NULL, 0, &n), ELECTRA_ERR_UNSUPPORTED, "");
    ts[0] = text_of("the whale");
    CHECK(electra_session_embed_texts(s, NULL, ts, 1, NULL, more, 4) == ELECTRA_ERR_BUFFER_TOO_SMALL,
          "embeddings need hidden_size floats");
    electra_session_free(s);
    electra_model_free(c);
}

static void test_text(void) {
    static const char *const subs[] = {"discriminator", "generator"};
    static const char *const files[] = {"config.json", "model.safetensors"};
    char pair[600], cls[600], from[1100], to[1100];
    electra_model *m, *plain;
    electra_session *s;
    electra_tokenizer *t = NULL, *t2 = NULL;
    electra_finetuner *f = NULL;
    electra_text one;
    float e[64];
    size_t seq_len, i, j;
    int32_t ids[8];

    snprintf(pair, sizeof pair, "%s/text-pair", tmp_root);
    snprintf(cls, sizeof cls, "%s/text-cls", tmp_root);
    mkdir(pair, 0700);
    for (i = 0; i < 2; i++) {
        snprintf(to, sizeof to, "%s/%s", pair, subs[i]);
        mkdir(to, 0700);
        for (j = 0; j < 2; j++) {
            snprintf(from, sizeof from, "%s/emb_eq_hidden/%s/%s", fixtures, subs[i], files[j]);
            snprintf(to, sizeof to, "%s/%s/%s", pair, subs[i], files[j]);
            CHECK(copy_file(from, to), "copy %s to %s", from, to);
        }
    }
    snprintf(to, sizeof to, "%s/discriminator/vocab.txt", pair);
    CHECK(write_file(to, TEXT_VOCAB, strlen(TEXT_VOCAB)), "write %s", to);

    /* A model without a tokenizer has none to give. */
    plain = load_case("emb_eq_hidden", NULL);
    t = (electra_tokenizer *)&t;
    EXPECT(electra_model_tokenizer(plain, &t), ELECTRA_ERR_UNSUPPORTED, "tokenizer");
    CHECK(t == NULL, "*out is NULL without a tokenizer");
    electra_model_free(plain);

    m = load(pair);
    if (!m) return;
    s = text_session(m);
    CHECK(electra_model_tokenizer(m, &t) == ELECTRA_OK && t != NULL, "the model's tokenizer: %s", last_error());
    EXPECT(electra_model_tokenizer(m, NULL), ELECTRA_ERR_NULL_POINTER, "out");
    EXPECT(electra_model_tokenizer(NULL, &t2), ELECTRA_ERR_INVALID_HANDLE, "");
    EXPECT(electra_model_tokenizer((electra_model *)s, &t2), ELECTRA_ERR_INVALID_HANDLE, "");
    if (t && s) {
        test_text_tokenizer(t, to);
        test_text_session(m, s, t);
    }

    /* The tokenizer outlives its model; freed twice is harmless; used after free is
       ELECTRA_ERR_INVALID_HANDLE. */
    CHECK(electra_model_tokenizer(m, &t2) == ELECTRA_OK, "a second handle: %s", last_error());
    electra_model_free(m);
    one = text_of("the whale");
    CHECK(electra_tokenizer_encode(t2, &one, NULL, 1, NULL, ids, NULL, NULL, NULL, 8, &seq_len) == ELECTRA_OK &&
              seq_len == 4,
          "the tokenizer outlives its model: %s", last_error());
    CHECK(electra_session_embed_texts(s, t2, &one, 1, NULL, e, 64) == ELECTRA_OK, "the session too: %s",
          last_error());
    electra_tokenizer_free(t);
    electra_tokenizer_free(t);
    electra_tokenizer_free(NULL);
    EXPECT(electra_tokenizer_encode(t, &one, NULL, 1, NULL, ids, NULL, NULL, NULL, 8, &seq_len),
           ELECTRA_ERR_INVALID_HANDLE, "");
    EXPECT(electra_session_embed_texts(s, t, &one, 1, NULL, e, 64), ELECTRA_ERR_INVALID_HANDLE, "");
    EXPECT(electra_session_detect_text(s, t, "whale", 5, NULL, NULL, 0, &seq_len), ELECTRA_ERR_INVALID_HANDLE, "");
    EXPECT(electra_tokenizer_decode(t, ids, 1, 0, NULL, 0, &seq_len), ELECTRA_ERR_INVALID_HANDLE, "");
    CHECK(electra_tokenizer_encode(t2, &one, NULL, 1, NULL, ids, NULL, NULL, NULL, 8, &seq_len) == ELECTRA_OK,
          "the other handle stays valid: %s", last_error());
    electra_tokenizer_free(t2);
    electra_session_free(s);

    /* A 2-label classifier from the pair (fresh head, labels LABEL_0 and LABEL_1), saved with
       the vocabulary beside it. */
    CHECK(electra_finetuner_new(pair, 2, "{\"threads\": 1, \"seed\": 3}", &f) == ELECTRA_OK, "finetuner: %s",
          last_error());
    CHECK(f && electra_finetuner_save(f, cls) == ELECTRA_OK, "finetuner save: %s", last_error());
    electra_finetuner_free(f);
    snprintf(to, sizeof to, "%s/vocab.txt", cls);
    CHECK(write_file(to, TEXT_VOCAB, strlen(TEXT_VOCAB)), "write %s", to);
    test_text_classifier(cls);
    remove_tree(pair);
    remove_tree(cls);
}

int main(int argc, char **argv) {
    electra_model *m;
    if (getenv("ELECTRA_FIXTURES")) fixtures = getenv("ELECTRA_FIXTURES");
    if (argc > 1) {
        snprintf(tmp_root, sizeof tmp_root, "%s", argv[1]);
        mkdir(tmp_root, 0700);
    } else {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/electra-c-test-XXXXXX");
        if (!mkdtemp(tmp_root)) {
            perror("mkdtemp");
            return 2;
        }
    }
    printf("libelectra %s, ABI %u\n", electra_version(), electra_abi_version());

    test_globals();
    test_parity();
    test_int8();
    m = load_case("emb_lt_hidden", NULL);
    if (m) {
        test_info(m);
        test_null_and_wrong_handles(m);
        test_bad_inputs(m);
        test_devices(m);
        electra_model_free(m);
    }
    test_unsupported();
    test_files();
    test_last_error();
    test_threads();
    test_stale_handles();
    test_free_while_in_use();
    test_text();
    rmdir(tmp_root);

    printf("worst parity: max_rel %.3e (%s), max_abs %.3e (%s)\n", worst_rel, worst_rel_where, worst_abs,
           worst_abs_where);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
