/*
 * classify_text.cpp: text classification and embeddings from C++ with include/electra.hpp.
 * Loads a fine-tuned classifier (a directory written by `electra finetune` or
 * electra_finetuner_save, with its tokenizer), prints each sentence's label probabilities with
 * the label names, then the cosine similarities of the sentences' normalised embeddings.
 * `electra predict --model MODEL_DIR TEXT` prints the same probabilities.
 *
 *   make -C examples && target/examples-c/classify_text MODEL_DIR
 */
#include <cstdio>
#include <string>
#include <vector>

#include "electra.hpp"

int main(int argc, char **argv) {
    if (argc != 2) return std::fprintf(stderr, "usage: classify_text MODEL_DIR\n"), 2;
    try {
        electra::Model model = electra::Model::load(argv[1]);
        electra::Session session(model);
        std::vector<std::string> texts = {"the whale swam in the sea", "a white whale swims", "the captain sold the ship"};
        std::vector<std::string> labels = model.label_names();
        std::vector<float> probs = session.classify_texts(texts);
        for (std::size_t i = 0; i < texts.size(); i++) {
            std::printf("%s\n", texts[i].c_str());
            for (std::size_t j = 0; j < labels.size(); j++)
                std::printf("  %-10s %.4f\n", labels[j].c_str(), probs[i * labels.size() + j]);
        }
        electra_text_params p = electra::text_params();
        p.normalize = 1;
        std::vector<float> e = session.embed_texts(texts, p);
        std::size_t h = session.info().hidden_size;
        for (std::size_t i = 0; i < texts.size(); i++)
            for (std::size_t j = i + 1; j < texts.size(); j++) {
                float dot = 0;
                for (std::size_t k = 0; k < h; k++) dot += e[i * h + k] * e[j * h + k];
                std::printf("cos(%zu, %zu) = %.6f\n", i, j, dot);
            }
    } catch (const electra::Error &e) {
        std::fprintf(stderr, "classify_text: %s (%s)\n", e.what(), e.status_name());
        return 1;
    }
}
