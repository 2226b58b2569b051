/* The training half of the C ABI from C: create, step, stats, bad input that leaves the trainer
 * untouched, cancel (also from another thread), save/resume bit-exactness, export and loading the
 * export for inference. Run by tests/c/run.sh under valgrind. Usage: test_trainer TMPDIR */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "electra.h"

static int passed, failed;

static void check_at(int line, int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        char msg[512];
        electra_last_error_message(msg, sizeof msg);
        failed++;
        fprintf(stderr, "test_trainer.c:%d: FAILED: %s (last error: %s)\n", line, what, msg);
    }
}
#define CHECK(cond) check_at(__LINE__, (cond) != 0, #cond)

static int last_error_contains(const char *needle) {
    char msg[512];
    electra_last_error_message(msg, sizeof msg);
    return strstr(msg, needle) != NULL;
}

enum { B = 4, T = 32 };
static const char *OPTS =
    "{\"vocab_size\": 200, \"max_seq_len\": 32, \"mask_token_id\": 4, \"special_token_ids\": [0, 1, 2, 3, 4],"
    " \"seed\": 7, \"threads\": 1, \"learning_rate\": 0.001, \"warmup_steps\": 2, \"total_steps\": 100}";

static int32_t ids[B * T], mask[B * T], types[B * T];

static void make_batch(int k) {
    for (int r = 0; r < B; r++) {
        int len = T - (r * 5 + k) % 9;
        for (int i = 0; i < T; i++) {
            int real = i < len;
            ids[r * T + i] = !real ? 0 : i == 0 ? 2 : i == len - 1 ? 3 : 5 + (r + 3 * i + 7 * k) % 190;
            mask[r * T + i] = real;
            types[r * T + i] = real && i >= len / 2;
        }
    }
}

static electra_status step(electra_trainer *t, int k, electra_step_stats *s) {
    make_batch(k);
    return electra_trainer_step(t, ids, mask, types, B, T, s);
}

static electra_step_stats stats_init(void) {
    electra_step_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    return s;
}

struct cancel_arg {
    electra_trainer *t;
    volatile int stop;
};

static void *canceller(void *p) {
    struct cancel_arg *a = p;
    struct timespec pause = {0, 2000000}; /* 2 ms: do not starve the stepping thread */
    while (!a->stop) {
        electra_trainer_cancel(a->t);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

/* Discriminator logits of batch k from a model, for bit comparisons. */
static void logits_of(const electra_model *m, int k, float *out) {
    electra_session *s = NULL;
    CHECK(electra_session_new(m, &s) == ELECTRA_OK);
    make_batch(k);
    CHECK(electra_session_discriminate(s, ids, mask, types, B, T, out, B * T) == ELECTRA_OK);
    electra_session_free(s);
}

int main(int argc, char **argv) {
    char ckpt[600], exported[600], config[600];
    electra_trainer *t = NULL, *ref = NULL, *resumed = NULL, *bad = (electra_trainer *)&passed;
    electra_step_stats s = stats_init(), r = stats_init();
    float losses[4], again[4];
    int i;
    if (argc < 2) {
        fprintf(stderr, "usage: test_trainer TMPDIR\n");
        return 2;
    }
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", argv[1]);
    snprintf(exported, sizeof exported, "%s/export", argv[1]);
    snprintf(config, sizeof config, "%s/config.json", argv[1]);
    mkdir(argv[1], 0700); /* may exist already */
    {
        /* A discriminator config.json smaller than the tiny preset: valgrind runs ~50x slower. */
        FILE *f = fopen(config, "w");
        CHECK(f != NULL);
        if (f == NULL) return 1;
        fputs("{\"vocab_size\": 200, \"embedding_size\": 32, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 4, \"intermediate_size\": 128, \"max_position_embeddings\": 64}", f);
        fclose(f);
    }

    /* Creation and its errors. */
    CHECK(electra_trainer_new(config, OPTS, &t) == ELECTRA_OK && t != NULL);
    CHECK(electra_trainer_new(config, OPTS, &ref) == ELECTRA_OK && ref != NULL);
    {
        electra_trainer *x = (electra_trainer *)&passed;
        CHECK(electra_trainer_new("tiny", "{\"learning_rat\": 1}", &x) == ELECTRA_ERR_INVALID_ARGUMENT && x == NULL);
        CHECK(last_error_contains("learning_rat"));
        CHECK(electra_trainer_new("tiny", "{\"seed\": \"x\"}", &x) == ELECTRA_ERR_INVALID_ARGUMENT);
        CHECK(last_error_contains("seed"));
        CHECK(electra_trainer_new("gigantic", NULL, &x) == ELECTRA_ERR_INVALID_ARGUMENT);
        CHECK(electra_trainer_new(NULL, NULL, &x) == ELECTRA_ERR_NULL_POINTER);
        CHECK(electra_trainer_new("tiny", OPTS, NULL) == ELECTRA_ERR_NULL_POINTER);
    }

    /* A step and its statistics; a NULL stats pointer is fine. */
    CHECK(step(t, 0, &s) == ELECTRA_OK);
    CHECK(s.step == 1 && isfinite(s.loss) && s.loss > 0 && s.learning_rate == 0.0f && s.grad_norm > 0);
    CHECK(fabsf(s.loss - (s.mlm_loss + 50.0f * s.disc_loss)) < 1e-3f * s.loss);
    CHECK(s.disc_accuracy >= 0 && s.disc_accuracy <= 1);
    CHECK(step(ref, 0, NULL) == ELECTRA_OK);

    /* Bad input is an error and leaves the trainer untouched (checked below against ref). */
    make_batch(1);
    ids[5] = 200;
    CHECK(electra_trainer_step(t, ids, mask, types, B, T, &s) == ELECTRA_ERR_INVALID_ARGUMENT);
    ids[5] = -1;
    CHECK(electra_trainer_step(t, ids, mask, types, B, T, &s) == ELECTRA_ERR_INVALID_ARGUMENT);
    make_batch(1);
    types[3] = 2;
    CHECK(electra_trainer_step(t, ids, mask, types, B, T, &s) == ELECTRA_ERR_INVALID_ARGUMENT);
    CHECK(electra_trainer_step(t, ids, mask, types, B, 64, &s) == ELECTRA_ERR_INVALID_ARGUMENT);
    CHECK(electra_trainer_step(t, ids, mask, types, 0, T, &s) == ELECTRA_ERR_INVALID_ARGUMENT);
    CHECK(electra_trainer_step(t, NULL, mask, types, B, T, &s) == ELECTRA_ERR_NULL_POINTER);
    CHECK(electra_trainer_step(NULL, ids, mask, types, B, T, &s) == ELECTRA_ERR_INVALID_HANDLE);
    CHECK(electra_trainer_step(bad, ids, mask, types, B, T, &s) == ELECTRA_ERR_INVALID_HANDLE);
    {
        electra_step_stats z;
        memset(&z, 0, sizeof z);
        CHECK(step(t, 1, &z) == ELECTRA_ERR_INVALID_ARGUMENT); /* struct_size not set */
    }
    /* A cancel before the step cancels it; the trainer is unchanged and usable. */
    electra_trainer_cancel(t);
    CHECK(step(t, 1, &s) == ELECTRA_ERR_CANCELLED);
    electra_trainer_cancel(NULL);

    /* Same steps as ref from here: bit-identical losses. */
    for (i = 1; i < 3; i++) {
        CHECK(step(t, i, &s) == ELECTRA_OK);
        CHECK(step(ref, i, &r) == ELECTRA_OK);
        CHECK(s.step == (uint64_t)i + 1 && memcmp(&s.loss, &r.loss, sizeof s.loss) == 0);
    }
    /* A smaller struct_size: only the fields that fit are written. */
    {
        unsigned char raw[sizeof(electra_step_stats) + 8];
        electra_step_stats *p = (electra_step_stats *)(void *)raw;
        size_t small = offsetof(electra_step_stats, loss);
        memset(raw, 0xAB, sizeof raw);
        p->struct_size = (uint32_t)small;
        CHECK(step(ref, 3, p) == ELECTRA_OK && p->step == 4);
        CHECK(raw[small] == 0xAB && raw[sizeof raw - 1] == 0xAB);
        CHECK(step(t, 3, NULL) == ELECTRA_OK);
    }

    /* Save, continue, resume: the resumed trainer repeats the same losses bit for bit. */
    CHECK(electra_trainer_save(t, ckpt) == ELECTRA_OK);
    for (i = 0; i < 4; i++) {
        CHECK(step(t, 4 + i, &s) == ELECTRA_OK);
        losses[i] = s.loss;
    }
    CHECK(electra_trainer_resume(ckpt, &resumed) == ELECTRA_OK && resumed != NULL);
    for (i = 0; i < 4; i++) {
        CHECK(step(resumed, 4 + i, &s) == ELECTRA_OK);
        again[i] = s.loss;
    }
    CHECK(s.step == 8 && memcmp(losses, again, sizeof losses) == 0);
    {
        electra_trainer *x = (electra_trainer *)&passed;
        CHECK(electra_trainer_resume("/nonexistent/electra", &x) == ELECTRA_ERR_IO && x == NULL);
        CHECK(electra_trainer_save(t, NULL) == ELECTRA_ERR_NULL_POINTER);
    }

    /* A second thread cancelling repeatedly: every step either completes or is cancelled. */
    {
        struct cancel_arg a;
        pthread_t th;
        int ok = 1;
        a.t = resumed;
        a.stop = 0;
        CHECK(pthread_create(&th, NULL, canceller, &a) == 0);
        for (i = 0; i < 3; i++) {
            electra_status st = step(resumed, i, NULL);
            ok &= st == ELECTRA_OK || st == ELECTRA_ERR_CANCELLED;
        }
        a.stop = 1;
        pthread_join(th, NULL);
        CHECK(ok);
    }

    /* Export, load the export, and compare with the trainer's own snapshot. */
    CHECK(electra_trainer_export(t, exported) == ELECTRA_OK);
    {
        electra_model *loaded = NULL, *snap = NULL;
        electra_model_info info;
        float *a = malloc(sizeof(float) * B * T), *b = malloc(sizeof(float) * B * T);
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        CHECK(electra_model_load(exported, &loaded) == ELECTRA_OK);
        CHECK(electra_trainer_get_model(t, &snap) == ELECTRA_OK);
        CHECK(electra_model_get_info(loaded, &info) == ELECTRA_OK);
        CHECK(info.has_discriminator == 1 && info.has_generator == 1 && info.vocab_size == 200);
        if (loaded && snap && a && b) {
            logits_of(loaded, 2, a);
            logits_of(snap, 2, b);
            CHECK(memcmp(a, b, sizeof(float) * B * T) == 0);
        }
        free(a);
        free(b);
        electra_model_free(loaded);
        electra_model_free(snap);
    }

    electra_trainer_free(t);
    electra_trainer_free(ref);
    electra_trainer_free(resumed);
    electra_trainer_free(NULL);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
