/*
 * train.c: ELECTRA pre-training from C with libelectra.
 *
 *   make -C examples
 *   target/examples-c/train /tmp/electra-run [STEPS]      # STEPS defaults to 20
 *
 * Creates a "tiny" trainer (2 layers, hidden 128) over an 8192-id vocabulary and trains it on a
 * synthetic language (no tokenizer needed): each row is [CLS] w1 ... w62 [SEP], where the next
 * word usually follows from the previous one by a fixed rule and sometimes is random, so the
 * generator has something to learn. The library masks, samples replacements and updates the
 * weights; each step prints step, loss, discriminator accuracy, learning rate and tokens/s.
 *
 * Half way it saves a checkpoint (WORK_DIR/checkpoint). After the last step it resumes that
 * checkpoint in a second trainer, replays the same batches and checks the losses are
 * bit-identical. Then it exports the model (WORK_DIR/export, HF pair layout loadable by
 * `transformers`), loads the export as an inference model, and checks it gives the same
 * discriminator logits as the trainer's in-memory snapshot.
 *
 * Every status is checked; a failure prints the call, the status name and the library's message.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "electra.h"

#define VOCAB 8192
#define SEQ 64
#define BATCH 8
#define CLS 101
#define SEP 102
#define FIRST_WORD 1000 /* ids 0..999 hold [PAD], [UNK], [CLS], [SEP], [MASK] and friends */
#define WORDS 512       /* the synthetic language uses ids FIRST_WORD..FIRST_WORD+WORDS-1 */

/* On failure: print and jump to the cleanup label. */
#define TRY(call)                                  \
    do {                                           \
        electra_status st_ = (call);               \
        if (st_ != ELECTRA_OK) {                   \
            report(#call, st_);                    \
            goto done;                             \
        }                                          \
    } while (0)

static void report(const char *call, electra_status st) {
    char msg[1024];
    electra_last_error_message(msg, sizeof msg);
    fprintf(stderr, "train: %s\n  failed: %s (%d): %s\n", call, electra_status_str(st), (int)st, msg);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* xorshift64*: a tiny deterministic generator, so runs and replays see the same batches. */
static uint32_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 2685821657736338717ULL) >> 32);
}

/* Batch number `step` of the synthetic language (a pure function of step). */
static void make_batch(uint64_t step, int32_t *ids) {
    uint64_t s = 0x9E3779B97F4A7C15ULL ^ (step + 1) * 0xD1B54A32D192ED03ULL;
    size_t r, j;
    for (r = 0; r < BATCH; r++) {
        int32_t *row = ids + r * SEQ;
        uint32_t w = rnd(&s) % WORDS;
        row[0] = CLS;
        for (j = 1; j + 1 < SEQ; j++) {
            row[j] = (int32_t)(FIRST_WORD + w);
            w = rnd(&s) % 4 == 0 ? rnd(&s) % WORDS : (w * 37 + 11) % WORDS; /* 75% follow the rule */
        }
        row[SEQ - 1] = SEP;
    }
}

/* One step on batch `step`; prints a progress line; stores the loss in *loss. */
static electra_status train_step(electra_trainer *t, uint64_t step, int32_t *ids, float *loss, const char *tag) {
    electra_step_stats stats;
    double t0, dt;
    electra_status st;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats; /* the library fills only the fields that fit */
    make_batch(step, ids);
    t0 = now();
    st = electra_trainer_step(t, ids, NULL, NULL, BATCH, SEQ, &stats);
    dt = now() - t0;
    if (st != ELECTRA_OK)
        return st;
    *loss = stats.loss;
    printf("%s step %4llu  loss %8.4f  (mlm %6.4f, disc %6.4f)  disc acc %5.3f  lr %.2e  |g| %6.3f  %7.0f tok/s\n",
           tag, (unsigned long long)stats.step, stats.loss, stats.mlm_loss, stats.disc_loss, stats.disc_accuracy,
           stats.learning_rate, stats.grad_norm, (double)(BATCH * SEQ) / (dt > 0 ? dt : 1e-9));
    fflush(stdout);
    return ELECTRA_OK;
}

int main(int argc, char **argv) {
    electra_trainer *trainer = NULL, *resumed = NULL;
    electra_model *snapshot = NULL, *exported = NULL;
    electra_session *s_snap = NULL, *s_exp = NULL;
    electra_model_info info;
    static int32_t ids[BATCH * SEQ];
    static float logit_snap[BATCH * SEQ], logit_exp[BATCH * SEQ];
    float *losses = NULL, loss = 0;
    char options[256], ckpt[1024], export_dir[1024];
    unsigned long steps = 20, half, i;
    double max_diff = 0, replaced_p = 0, kept_p = 0;
    size_t n_replaced = 0, n_kept = 0;
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s WORK_DIR [STEPS]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        steps = strtoul(argv[2], NULL, 10);
        if (steps < 2 || steps > 1000000) {
            fprintf(stderr, "train: STEPS must be in 2..1000000\n");
            return 2;
        }
    }
    if (electra_abi_version() != ELECTRA_ABI_VERSION) {
        fprintf(stderr, "train: libelectra has ABI %u, this program was built for ABI %d\n",
                (unsigned)electra_abi_version(), ELECTRA_ABI_VERSION);
        return 1;
    }
    half = steps / 2;
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", argv[1]);
    snprintf(export_dir, sizeof export_dir, "%s/export", argv[1]);
    losses = calloc(steps + 1, sizeof *losses);
    if (!losses) {
        fprintf(stderr, "train: out of memory\n");
        return 1;
    }

    /* Options are JSON; unknown keys or bad values are refused with a message naming them. */
    snprintf(options, sizeof options,
             "{\"vocab_size\": %d, \"max_seq_len\": %d, \"threads\": 2, \"seed\": 7, \"learning_rate\": 1e-3, "
             "\"warmup_steps\": %lu, \"total_steps\": %lu}",
             VOCAB, SEQ, steps / 10, steps);
    printf("libelectra %s: tiny trainer, options %s\n", electra_version(), options);
    TRY(electra_trainer_new("tiny", options, &trainer));

    for (i = 1; i <= steps; i++) {
        electra_status st = train_step(trainer, i, ids, &losses[i], "train ");
        if (st != ELECTRA_OK) {
            report("electra_trainer_step", st);
            goto done;
        }
        if (i == half) {
            /* The full state (weights, Adam moments, step, RNG, options), written atomically. */
            TRY(electra_trainer_save(trainer, ckpt));
            printf("saved checkpoint after step %lu to %s\n", half, ckpt);
        }
    }

    /* Resume the checkpoint and replay the second half: training continues bit-identically. */
    TRY(electra_trainer_resume(ckpt, &resumed));
    printf("resumed %s\n", ckpt);
    for (i = half + 1; i <= steps; i++) {
        electra_status st = train_step(resumed, i, ids, &loss, "resume");
        if (st != ELECTRA_OK) {
            report("electra_trainer_step", st);
            goto done;
        }
        if (memcmp(&loss, &losses[i], sizeof loss) != 0) {
            fprintf(stderr, "train: step %lu after resume: loss %.9g, first run %.9g\n", i, loss, losses[i]);
            goto done;
        }
    }
    printf("resume: steps %lu..%lu bit-identical to the first run\n", half + 1, steps);

    /* Export (HF pair layout) and load it back as an inference model. */
    TRY(electra_trainer_export(trainer, export_dir));
    printf("exported to %s\n", export_dir);
    TRY(electra_model_load(export_dir, &exported));
    info.struct_size = sizeof info;
    TRY(electra_model_get_info(exported, &info));
    printf("loaded export: vocab %u, hidden %u, layers %u, generator hidden %u, %llu parameters\n",
           (unsigned)info.vocab_size, (unsigned)info.hidden_size, (unsigned)info.num_hidden_layers,
           (unsigned)info.generator_hidden_size, (unsigned long long)info.num_parameters);
    TRY(electra_trainer_get_model(trainer, &snapshot));
    TRY(electra_session_new(exported, &s_exp));
    TRY(electra_session_new(snapshot, &s_snap));

    /* A held-out batch with every 5th word replaced by a random one. */
    make_batch(steps + 1000, ids);
    {
        uint64_t s = 12345;
        for (i = 0; i < BATCH * SEQ; i++)
            if (i % SEQ != 0 && i % SEQ != SEQ - 1 && i % 5 == 0)
                ids[i] = (int32_t)(FIRST_WORD + rnd(&s) % WORDS);
    }
    TRY(electra_session_discriminate(s_exp, ids, NULL, NULL, BATCH, SEQ, logit_exp, BATCH * SEQ));
    TRY(electra_session_discriminate(s_snap, ids, NULL, NULL, BATCH, SEQ, logit_snap, BATCH * SEQ));
    for (i = 0; i < BATCH * SEQ; i++) {
        double d = fabs((double)logit_exp[i] - (double)logit_snap[i]);
        double p = 1.0 / (1.0 + exp(-(double)logit_exp[i]));
        if (d > max_diff)
            max_diff = d;
        if (i % SEQ == 0 || i % SEQ == SEQ - 1)
            continue;
        if (i % 5 == 0) {
            replaced_p += p;
            n_replaced++;
        } else {
            kept_p += p;
            n_kept++;
        }
    }
    printf("export vs in-memory model: max |logit difference| %.3g\n", max_diff);
    printf("mean P(replaced): %.3f at replaced positions, %.3f elsewhere (after %lu steps)\n",
           replaced_p / (double)n_replaced, kept_p / (double)n_kept, steps);
    if (max_diff > 1e-5) {
        fprintf(stderr, "train: the exported model differs from the trainer's weights\n");
        goto done;
    }
    rc = 0;

done:
    electra_session_free(s_snap);
    electra_session_free(s_exp);
    electra_model_free(snapshot);
    electra_model_free(exported);
    electra_trainer_free(resumed);
    electra_trainer_free(trainer);
    free(losses);
    return rc;
}
