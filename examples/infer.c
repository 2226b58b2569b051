/*
 * infer.c: load an ELECTRA model with libelectra and run replaced-token detection from C.
 *
 *   make -C examples            # builds target/examples-c/infer (needs target/release/libelectra.so)
 *   target/examples-c/infer tests/fixtures/emb_eq_hidden
 *   target/examples-c/infer path/to/google-electra-small-discriminator
 *   target/examples-c/infer --logits MODEL_DIR   # only the raw logits, one per line (%.9e)
 *
 * MODEL_DIR is an HF directory (config.json + model.safetensors) or the pair layout
 * (MODEL_DIR/discriminator, MODEL_DIR/generator). The example prints the model's dimensions,
 * then runs the discriminator on a few synthetic rows of token ids (no tokenizer needed: any
 * id below vocab_size is valid input) and prints P(replaced) = sigmoid(logit) for each token.
 * The last row is shorter and padded, to show the attention mask. With --logits it prints only
 * the raw logits of the real tokens, one per line, to compare builds (scripts/cross-check.sh
 * diffs x86-64 against aarch64 this way).
 *
 * Every call's status is checked; on failure the status name and the library's message (which
 * names the file, tensor, shape or argument at fault) are printed and everything is freed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "electra.h"

#define ROWS 3
#define MAX_SEQ 12

/* Prints the failed call, the status name and the thread's last error message. */
static int failed(const char *call, electra_status st) {
    char msg[1024];
    electra_last_error_message(msg, sizeof msg);
    fprintf(stderr, "infer: %s failed: %s (%d): %s\n", call, electra_status_str(st), (int)st, msg);
    return 1;
}

static float sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

int main(int argc, char **argv) {
    electra_model *model = NULL;
    electra_session *session = NULL;
    electra_model_info info;
    electra_status st;
    int32_t *ids = NULL, *mask = NULL;
    float *logits = NULL;
    size_t seq_len, n, r, j;
    const char *dir;
    int rc = 1, raw = 0;

    if (argc == 3 && strcmp(argv[1], "--logits") == 0)
        raw = 1;
    else if (argc != 2) {
        fprintf(stderr, "usage: %s [--logits] MODEL_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[argc - 1];
    /* The header and the loaded library must describe the same ABI. */
    if (electra_abi_version() != ELECTRA_ABI_VERSION) {
        fprintf(stderr, "infer: libelectra has ABI %u, this program was built for ABI %d\n",
                (unsigned)electra_abi_version(), ELECTRA_ABI_VERSION);
        return 1;
    }
    if (!raw)
        printf("libelectra %s (ABI %u)\n", electra_version(), (unsigned)electra_abi_version());

    st = electra_model_load(dir, &model);
    if (st != ELECTRA_OK) {
        rc = failed("electra_model_load", st);
        goto done;
    }
    info.struct_size = sizeof info; /* the library fills only the fields that fit */
    st = electra_model_get_info(model, &info);
    if (st != ELECTRA_OK) {
        rc = failed("electra_model_get_info", st);
        goto done;
    }
    if (raw)
        goto info_done;
    printf("model %s\n", dir);
    printf("  vocab_size %u, hidden_size %u, embedding_size %u, layers %u\n", (unsigned)info.vocab_size,
           (unsigned)info.hidden_size, (unsigned)info.embedding_size, (unsigned)info.num_hidden_layers);
    printf("  max_position_embeddings %u, type_vocab_size %u\n", (unsigned)info.max_position_embeddings,
           (unsigned)info.type_vocab_size);
    printf("  discriminator %s, generator %s (hidden %u), parameters %llu, labels %u\n",
           info.has_discriminator ? "yes" : "no", info.has_generator ? "yes" : "no",
           (unsigned)info.generator_hidden_size, (unsigned long long)info.num_parameters, (unsigned)info.num_labels);
info_done:
    if (!info.has_discriminator) {
        fprintf(stderr, "infer: %s has no discriminator, nothing to detect\n", dir);
        goto done;
    }

    /* The session keeps the weights alive: the model could be freed right after this. */
    st = electra_session_new(model, &session);
    if (st != ELECTRA_OK) {
        rc = failed("electra_session_new", st);
        goto done;
    }

    /* Synthetic input: ROWS rows of seq_len ids, all below vocab_size. Row 0 and 1 are full,
     * row 2 uses only its first half; its padding is masked out (mask 0, id 0). */
    seq_len = info.max_position_embeddings < MAX_SEQ ? info.max_position_embeddings : MAX_SEQ;
    n = ROWS * seq_len;
    ids = malloc(n * sizeof *ids);
    mask = malloc(n * sizeof *mask);
    logits = malloc(n * sizeof *logits);
    if (!ids || !mask || !logits) {
        fprintf(stderr, "infer: out of memory\n");
        goto done;
    }
    for (r = 0; r < ROWS; r++) {
        size_t used = r == ROWS - 1 ? (seq_len + 1) / 2 : seq_len;
        for (j = 0; j < seq_len; j++) {
            int in = j < used;
            ids[r * seq_len + j] = in ? (int32_t)(1 + (r * 7 + j * 13) % (info.vocab_size > 1 ? info.vocab_size - 1 : 1)) : 0;
            mask[r * seq_len + j] = in;
        }
    }

    st = electra_session_discriminate(session, ids, mask, NULL, ROWS, seq_len, logits, n);
    if (st != ELECTRA_OK) {
        rc = failed("electra_session_discriminate", st);
        goto done;
    }
    if (raw) {
        for (j = 0; j < n; j++)
            if (mask[j])
                printf("%.9e\n", (double)logits[j]);
        rc = 0;
        goto done;
    }
    printf("P(replaced) per token (%d rows x %zu tokens; '-' = padding):\n", ROWS, seq_len);
    for (r = 0; r < ROWS; r++) {
        printf("  row %zu:", r);
        for (j = 0; j < seq_len; j++) {
            size_t k = r * seq_len + j;
            if (mask[k])
                printf(" %d:%.3f", (int)ids[k], sigmoid(logits[k]));
            else
                printf(" -");
        }
        printf("\n");
    }

    /* Errors are values: a buffer one element short is refused and left untouched. */
    st = electra_session_discriminate(session, ids, mask, NULL, ROWS, seq_len, logits, n - 1);
    if (st != ELECTRA_ERR_BUFFER_TOO_SMALL) {
        fprintf(stderr, "infer: expected ELECTRA_ERR_BUFFER_TOO_SMALL, got %s\n", electra_status_str(st));
        goto done;
    }
    {
        char msg[256];
        electra_last_error_message(msg, sizeof msg);
        printf("short buffer, as expected: %s: %s\n", electra_status_str(st), msg);
    }
    rc = 0;

done:
    free(logits);
    free(mask);
    free(ids);
    electra_session_free(session); /* NULL is a no-op */
    electra_model_free(model);
    return rc;
}
