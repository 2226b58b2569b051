/* Data-parallel training from C: two pthreads as ranks, each with its own trainer, summing their
 * gradients through electra_trainer_set_allreduce with an all-reduce written here (shared
 * memory and a barrier). Three steps on halves of a combined batch must equal one trainer with
 * accumulate_steps 2 on the combined batch: the same losses and byte-identical exported
 * weights. Also the errors: a failing callback, a NULL one, and world_size 2 without one. Run
 * by tests/c/run.sh under valgrind. Usage: test_allreduce TMPDIR */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "electra.h"

static int passed, failed;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;

/* Called from the rank threads too, hence the lock. `msg` is the error to show, NULL for this
 * thread's last one. */
static void check_at(int line, int ok, const char *what, const char *msg) {
    pthread_mutex_lock(&check_lock);
    if (ok) {
        passed++;
    } else {
        char last[512];
        electra_last_error_message(last, sizeof last);
        failed++;
        fprintf(stderr, "test_allreduce.c:%d: FAILED: %s (last error: %s)\n", line, what, msg ? msg : last);
    }
    pthread_mutex_unlock(&check_lock);
}
#define CHECK(cond) check_at(__LINE__, (cond) != 0, #cond, NULL)
/* A check of what a rank thread got, with that thread's error message. */
#define CHECK_RANK(cond, rank) check_at(__LINE__, (cond) != 0, #cond, (rank).msg)

static int last_error_contains(const char *needle) {
    char msg[512];
    electra_last_error_message(msg, sizeof msg);
    return strstr(msg, needle) != NULL;
}

/* B rows per rank, 2B in the combined batch; tiny, because valgrind runs ~50x slower. */
enum { RANKS = 2, B = 2, T = 16, STEPS = 3 };
#define COMMON                                                                                           \
    "\"vocab_size\": 200, \"max_seq_len\": 32, \"mask_token_id\": 4, \"special_token_ids\": [0, 1, 2, 3, 4]," \
    " \"seed\": 7, \"threads\": 1, \"learning_rate\": 0.002, \"warmup_steps\": 1, \"total_steps\": 100"
static const char *RANK_OPTS[RANKS] = {
    "{" COMMON ", \"rank\": 0, \"world_size\": 2}",
    "{" COMMON ", \"rank\": 1, \"world_size\": 2}",
};
static const char *ONE_OPTS = "{" COMMON ", \"accumulate_steps\": 2}";

/* Step k's combined batch of RANKS*B rows, each row padded differently. */
struct batch {
    int32_t ids[RANKS * B * T], mask[RANKS * B * T], types[RANKS * B * T];
};

static void make_batch(int k, struct batch *b) {
    for (int r = 0; r < RANKS * B; r++) {
        int len = T - (r * 5 + k * 3) % 9;
        for (int i = 0; i < T; i++) {
            int real = i < len;
            b->ids[r * T + i] = !real ? 0 : i == 0 ? 2 : i == len - 1 ? 3 : 5 + (r * 7 + i * 3 + k) % 190;
            b->mask[r * T + i] = real;
            b->types[r * T + i] = real && i >= len / 2;
        }
    }
}

/* The ranks' meeting point. Each call publishes its buffer, waits for the other rank, sums
 * both buffers in rank order into scratch memory (so both ranks compute the same bits), waits
 * until neither reads the other's buffer any more, then copies the sum into its own. */
struct group {
    pthread_barrier_t barrier;
    float *data[RANKS];
    size_t count[RANKS];
    int fail; /* set by the main thread between runs: every callback fails at once */
};

struct rank {
    struct group *g;
    int r;
    electra_trainer *t;
    float loss[STEPS];
    electra_status set_st, step_st[STEPS];
    char msg[512]; /* this thread's last error message, for the main thread */
};

static int32_t sum_allreduce(float *data, size_t count, void *user_data) {
    struct rank *me = user_data;
    struct group *g = me->g;
    float *sum;
    size_t i;
    int same;
    if (g->fail) {
        return 7;
    }
    g->data[me->r] = data;
    g->count[me->r] = count;
    pthread_barrier_wait(&g->barrier);
    same = g->count[0] == g->count[1];
    sum = same ? malloc(count * sizeof(float) + 1) : NULL;
    if (sum != NULL) {
        for (i = 0; i < count; i++) {
            sum[i] = g->data[0][i] + g->data[1][i];
        }
    }
    pthread_barrier_wait(&g->barrier);
    if (sum == NULL) {
        /* Both ranks see the same counts, so a mismatch fails both; only malloc fails alone. */
        return same ? 2 : 1;
    }
    memcpy(data, sum, count * sizeof(float));
    free(sum);
    return 0;
}

/* One rank: join the group, then STEPS steps on rows r*B.. of each combined batch. */
static void *run_rank(void *p) {
    struct rank *me = p;
    struct batch b;
    int k;
    me->set_st = electra_trainer_set_allreduce(me->t, sum_allreduce, me);
    for (k = 0; k < STEPS; k++) {
        electra_step_stats s;
        size_t off = (size_t)me->r * B * T;
        memset(&s, 0, sizeof s);
        s.struct_size = sizeof s;
        make_batch(k, &b);
        me->step_st[k] = electra_trainer_step(me->t, b.ids + off, b.mask + off, b.types + off, B, T, &s);
        me->loss[k] = s.loss;
    }
    electra_last_error_message(me->msg, sizeof me->msg);
    return NULL;
}

/* One step on each rank with the group failing: both must fail alike. */
static void *failing_step(void *p) {
    struct rank *me = p;
    struct batch b;
    size_t off = (size_t)me->r * B * T;
    make_batch(STEPS, &b);
    me->step_st[0] = electra_trainer_step(me->t, b.ids + off, b.mask + off, b.types + off, B, T, NULL);
    electra_last_error_message(me->msg, sizeof me->msg);
    return NULL;
}

static void on_ranks(struct rank *ranks, void *(*f)(void *)) {
    pthread_t th[RANKS];
    int r;
    for (r = 0; r < RANKS; r++) {
        CHECK(pthread_create(&th[r], NULL, f, &ranks[r]) == 0);
    }
    for (r = 0; r < RANKS; r++) {
        pthread_join(th[r], NULL);
    }
}

/* The whole file, or NULL; *len its size. */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* Whether both exports hold byte-identical weights for the tower ("discriminator", "generator"). */
static int same_weights(const char *a, const char *b, const char *tower) {
    char pa[700], pb[700];
    size_t na = 0, nb = 0;
    unsigned char *x, *y;
    int same;
    snprintf(pa, sizeof pa, "%s/%s/model.safetensors", a, tower);
    snprintf(pb, sizeof pb, "%s/%s/model.safetensors", b, tower);
    x = slurp(pa, &na);
    y = slurp(pb, &nb);
    CHECK(x != NULL && y != NULL);
    same = x != NULL && y != NULL && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static electra_trainer *trainer(const char *config, const char *opts) {
    electra_trainer *t = NULL;
    CHECK(electra_trainer_new(config, opts, &t) == ELECTRA_OK && t != NULL);
    return t;
}

int main(int argc, char **argv) {
    char config[600], dir[RANKS + 2][600];
    struct group g;
    struct rank ranks[RANKS];
    electra_trainer *one;
    float one_loss[STEPS];
    int r, k;
    if (argc < 2) {
        fprintf(stderr, "usage: test_allreduce TMPDIR\n");
        return 2;
    }
    mkdir(argv[1], 0700); /* may exist already */
    snprintf(config, sizeof config, "%s/config.json", argv[1]);
    for (r = 0; r < RANKS; r++) {
        snprintf(dir[r], sizeof dir[r], "%s/rank%d", argv[1], r);
    }
    snprintf(dir[RANKS], sizeof dir[RANKS], "%s/one", argv[1]);
    snprintf(dir[RANKS + 1], sizeof dir[RANKS + 1], "%s/initial", argv[1]);
    {
        FILE *f = fopen(config, "w");
        CHECK(f != NULL);
        if (f == NULL) return 1;
        fputs("{\"vocab_size\": 200, \"embedding_size\": 32, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 4, \"intermediate_size\": 128, \"max_position_embeddings\": 64}", f);
        fclose(f);
    }

    /* Two ranks of 2 on B rows each... */
    memset(&g, 0, sizeof g);
    CHECK(pthread_barrier_init(&g.barrier, NULL, RANKS) == 0);
    memset(ranks, 0, sizeof ranks);
    for (r = 0; r < RANKS; r++) {
        ranks[r].g = &g;
        ranks[r].r = r;
        ranks[r].t = trainer(config, RANK_OPTS[r]);
    }
    on_ranks(ranks, run_rank);
    for (r = 0; r < RANKS; r++) {
        CHECK_RANK(ranks[r].set_st == ELECTRA_OK, ranks[r]);
        for (k = 0; k < STEPS; k++) {
            CHECK_RANK(ranks[r].step_st[k] == ELECTRA_OK, ranks[r]);
        }
        CHECK(electra_trainer_export(ranks[r].t, dir[r]) == ELECTRA_OK);
    }
    CHECK(memcmp(ranks[0].loss, ranks[1].loss, sizeof ranks[0].loss) == 0);

    /* ...are one trainer accumulating two micro-batches of the combined 2B rows. */
    one = trainer(config, ONE_OPTS);
    CHECK(electra_trainer_export(one, dir[RANKS + 1]) == ELECTRA_OK);
    for (k = 0; k < STEPS; k++) {
        struct batch b;
        electra_step_stats s;
        memset(&s, 0, sizeof s);
        s.struct_size = sizeof s;
        make_batch(k, &b);
        CHECK(electra_trainer_step(one, b.ids, b.mask, b.types, RANKS * B, T, &s) == ELECTRA_OK);
        CHECK(s.step == (uint64_t)k + 1 && s.loss > 0);
        one_loss[k] = s.loss;
    }
    CHECK(electra_trainer_export(one, dir[RANKS]) == ELECTRA_OK);
    CHECK(memcmp(one_loss, ranks[0].loss, sizeof one_loss) == 0);
    if (memcmp(one_loss, ranks[0].loss, sizeof one_loss) != 0) {
        for (k = 0; k < STEPS; k++) {
            fprintf(stderr, "  step %d: loss %.9g (2 ranks) vs %.9g (1 trainer)\n", k + 1, ranks[0].loss[k], one_loss[k]);
        }
    }
    CHECK(same_weights(dir[0], dir[1], "discriminator") && same_weights(dir[0], dir[1], "generator"));
    CHECK(same_weights(dir[0], dir[RANKS], "discriminator") && same_weights(dir[0], dir[RANKS], "generator"));
    CHECK(!same_weights(dir[0], dir[RANKS + 1], "discriminator")); /* training changed them */

    /* A callback returning nonzero fails the step on both ranks, with the code in the message;
     * a collective that failed leaves the ranks possibly apart, so no further step runs. */
    g.fail = 1;
    on_ranks(ranks, failing_step);
    for (r = 0; r < RANKS; r++) {
        CHECK_RANK(ranks[r].step_st[0] == ELECTRA_ERR_DISTRIBUTED, ranks[r]);
        CHECK_RANK(strstr(ranks[r].msg, "all-reduce returned 7") != NULL, ranks[r]);
    }
    on_ranks(ranks, failing_step);
    for (r = 0; r < RANKS; r++) {
        CHECK_RANK(ranks[r].step_st[0] == ELECTRA_ERR_DISTRIBUTED, ranks[r]);
        CHECK_RANK(strstr(ranks[r].msg, "an earlier collective failed") != NULL, ranks[r]);
    }
    CHECK(strcmp(electra_status_str(ELECTRA_ERR_DISTRIBUTED), "distributed run failed") == 0);

    /* One rank alone. world_size 2 and no all-reduce: the step says what is missing. */
    {
        electra_trainer *t = trainer(config, RANK_OPTS[0]);
        struct rank me;
        struct batch b;
        memset(&me, 0, sizeof me);
        me.g = &g;
        make_batch(0, &b);
        CHECK(electra_trainer_step(t, b.ids, b.mask, b.types, B, T, NULL) == ELECTRA_ERR_INVALID_ARGUMENT);
        CHECK(last_error_contains("electra_trainer_set_allreduce"));
        CHECK(electra_trainer_set_allreduce(t, NULL, &me) == ELECTRA_ERR_NULL_POINTER);
        CHECK(last_error_contains("allreduce"));
        CHECK(electra_trainer_set_allreduce(NULL, sum_allreduce, &me) == ELECTRA_ERR_INVALID_HANDLE);
        /* set_allreduce is itself collective (the ranks compare their starting points), so a
         * failing callback shows there already. */
        CHECK(electra_trainer_set_allreduce(t, sum_allreduce, &me) == ELECTRA_ERR_DISTRIBUTED);
        CHECK(last_error_contains("all-reduce returned 7"));
        electra_trainer_free(t);
    }

    for (r = 0; r < RANKS; r++) {
        electra_trainer_free(ranks[r].t);
    }
    electra_trainer_free(one);
    pthread_barrier_destroy(&g.barrier);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
