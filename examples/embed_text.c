/*
 * embed_text.c: sentence embeddings from C. Loads a model directory with its tokenizer
 * (tokenizer.json or vocab.txt beside config.json, or in discriminator/ of the pair layout),
 * embeds three sentences (mean pooling, normalised to unit length) and prints their cosine
 * similarities: dot products of the rows. `electra embed --model MODEL_DIR TEXT...` prints the
 * same vectors before normalisation.
 *
 *   make -C examples && target/examples-c/embed_text MODEL_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "electra.h"

int main(int argc, char **argv) {
    const char *s[3] = {"the whale swam in the sea", "a white whale swims", "the captain sold the ship"};
    electra_text texts[3];
    electra_model *m = NULL;
    electra_session *ss = NULL;
    electra_model_info info = {.struct_size = sizeof info};
    electra_text_params p = electra_text_default_params();
    electra_status st;
    char msg[512];
    float *e = NULL;
    if (argc != 2) return fprintf(stderr, "usage: embed_text MODEL_DIR\n"), 2;
    for (int i = 0; i < 3; i++) texts[i] = (electra_text){s[i], strlen(s[i])};
    p.normalize = 1;
    if (!(st = electra_model_load(argv[1], &m)) && !(st = electra_model_get_info(m, &info)) &&
        !(st = electra_session_new(m, &ss)) && (e = malloc(3 * info.hidden_size * sizeof *e)) &&
        !(st = electra_session_embed_texts(ss, NULL, texts, 3, &p, e, 3 * info.hidden_size)))
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++) {
                float dot = 0;
                for (size_t k = 0; k < info.hidden_size; k++) dot += e[i * info.hidden_size + k] * e[j * info.hidden_size + k];
                printf("cos(%d, %d) = %.6f  \"%s\" / \"%s\"\n", i, j, dot, s[i], s[j]);
            }
    if (st && electra_last_error_message(msg, sizeof msg)) fprintf(stderr, "embed_text: %s\n", msg);
    free(e);
    electra_session_free(ss);
    electra_model_free(m);
    return st || !e;
}
