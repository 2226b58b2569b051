// example.cpp: libelectra from C++ through the RAII wrapper include/electra.hpp.
//
//   make -C examples
//   target/examples-c/example tests/fixtures/emb_eq_hidden /tmp/electra-example
//
// MODEL_DIR: a model with a discriminator (HF directory or pair layout); WORK_DIR: where the
// fine-tuned classifier and the trainer's checkpoint and export are written. Shows inference
// (discriminator, hidden states, generator), errors as exceptions carrying the status code,
// fine-tuning a classifier, and pre-training with save / resume / export. Handles are freed by
// destructors on every path, exceptions included.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "electra.hpp"

// The wrappers own their handle: they move, they do not copy.
static_assert(!std::is_copy_constructible<electra::Model>::value, "Model is move-only");
static_assert(!std::is_copy_assignable<electra::Session>::value, "Session is move-only");
static_assert(std::is_nothrow_move_constructible<electra::Trainer>::value, "Trainer moves without throwing");
static_assert(std::is_nothrow_move_assignable<electra::FineTuner>::value, "FineTuner moves without throwing");
static_assert(std::is_base_of<std::runtime_error, electra::Error>::value, "Error is a std::runtime_error");

namespace {

int failures = 0;

void expect(bool ok, const std::string &what) {
    if (!ok) {
        std::cerr << "FAIL: " << what << "\n";
        failures++;
    }
}

// Runs `f`, which must throw electra::Error with status `want`.
template <typename F>
void expect_error(electra_status want, const std::string &what, F f) {
    try {
        f();
        expect(false, what + ": no exception");
    } catch (const electra::Error &e) {
        std::cout << "  " << what << " -> electra::Error status " << e.status() << " (" << e.status_name()
                  << "): " << e.what() << "\n";
        expect(e.status() == want, what + ": expected status " + electra_status_str(want));
    }
}

float sigmoid(float x) {
    return 1.0f / (1.0f + std::exp(-x));
}

// Synthetic rows of ids below `vocab` (no tokenizer needed), avoiding ids 0..4.
std::vector<int32_t> synthetic_ids(std::size_t batch, std::size_t seq_len, uint32_t vocab, uint32_t salt) {
    std::vector<int32_t> ids(batch * seq_len);
    for (std::size_t i = 0; i < ids.size(); i++)
        ids[i] = static_cast<int32_t>(5 + (i * 11 + salt * 7 + (i / seq_len) * 3) % (vocab - 5));
    return ids;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " MODEL_DIR WORK_DIR\n";
        return 2;
    }
    const std::string model_dir = argv[1], work = argv[2];
    try {
        electra::check_abi();
        std::cout << "libelectra " << electra::version() << " (ABI " << electra::abi_version() << ")\n";

        // --- Inference -------------------------------------------------------------------
        electra::Model model = electra::Model::load(model_dir);
        const electra_model_info info = model.info();
        std::cout << "model " << model_dir << ": vocab " << info.vocab_size << ", hidden " << info.hidden_size
                  << ", layers " << info.num_hidden_layers << ", generator " << (info.has_generator ? "yes" : "no")
                  << ", " << info.num_parameters << " parameters\n";

        electra::Session session(model);
        electra::Model moved = std::move(model);  // ownership moves; `model` is now empty
        expect(!model && moved, "a moved-from Model is empty");
        moved = electra::Model();  // frees the model; the session keeps the weights alive

        const std::size_t batch = 2, seq_len = 8;
        std::vector<int32_t> ids = synthetic_ids(batch, seq_len, info.vocab_size, 1);
        std::vector<int32_t> mask(batch * seq_len, 1);
        mask[batch * seq_len - 1] = mask[batch * seq_len - 2] = 0;  // row 1 ends with 2 padding tokens
        std::vector<float> logits = session.discriminate(ids, batch, seq_len, mask);
        expect(logits.size() == batch * seq_len, "discriminate returns batch*seq_len logits");
        for (std::size_t r = 0; r < batch; r++) {
            std::cout << "  row " << r << " P(replaced):";
            for (std::size_t j = 0; j < seq_len; j++) {
                char cell[32];
                std::snprintf(cell, sizeof cell, " %.3f", sigmoid(logits[r * seq_len + j]));
                std::cout << (mask[r * seq_len + j] ? cell : " -");
            }
            std::cout << "\n";
        }
        std::vector<float> hidden = session.hidden_states(ids, batch, seq_len, mask);
        expect(hidden.size() == batch * seq_len * info.hidden_size, "hidden_states size");
        std::cout << "  hidden states: " << hidden.size() << " floats\n";
        if (info.has_generator) {
            std::vector<float> gen = session.generator_logits(ids, batch, seq_len, mask);
            expect(gen.size() == batch * seq_len * info.vocab_size, "generator_logits size");
            std::size_t best = 0;
            for (std::size_t v = 1; v < info.vocab_size; v++)
                if (gen[v] > gen[best])
                    best = v;
            std::cout << "  generator logits: " << gen.size() << " floats; top id at position 0: " << best << "\n";
        }

        // --- Errors are exceptions carrying the status code --------------------------------
        std::cout << "errors:\n";
        expect_error(ELECTRA_ERR_IO, "Model::load of a missing directory",
                     [] { electra::Model::load("/nonexistent/electra-model"); });
        expect_error(ELECTRA_ERR_SHAPE, "discriminate with too few ids (checked by the wrapper)",
                     [&] { session.discriminate(std::vector<int32_t>(3, 5), batch, seq_len); });
        expect_error(ELECTRA_ERR_INVALID_ARGUMENT, "discriminate with an id outside the vocabulary", [&] {
            std::vector<int32_t> bad = ids;
            bad[0] = static_cast<int32_t>(info.vocab_size);
            session.discriminate(bad, batch, seq_len);
        });
        expect_error(ELECTRA_ERR_INVALID_HANDLE, "a call on a moved-from Model", [&] { model.info(); });

        // --- Fine-tuning a 2-label classifier ---------------------------------------------
        std::cout << "fine-tuning:\n";
        {
            electra::FineTuner tuner(model_dir, 2, "{\"learning_rate\": 1e-3, \"warmup_steps\": 0, \"seed\": 3}");
            std::vector<int32_t> labels(batch);
            for (std::size_t r = 0; r < batch; r++)
                labels[r] = static_cast<int32_t>(r % 2);
            for (int step = 0; step < 3; step++) {
                electra_finetune_stats st = tuner.step(ids, batch, seq_len, labels, mask);
                std::cout << "  step " << st.step << " loss " << st.loss << " accuracy " << st.accuracy << "\n";
            }
            tuner.save(work + "/classifier");
        }
        {
            electra::Session classifier(electra::Model::load(work + "/classifier"));
            std::vector<float> scores = classifier.classify(ids, batch, seq_len, mask);
            expect(scores.size() == batch * 2 && classifier.info().num_labels == 2, "classify returns batch*2 logits");
            std::cout << "  classifier logits row 0: " << scores[0] << " " << scores[1] << "\n";
        }

        // --- Pre-training: step, save, resume, export --------------------------------------
        std::cout << "pre-training:\n";
        {
            const std::string options =
                "{\"vocab_size\": 1000, \"max_seq_len\": 16, \"threads\": 2, \"seed\": 5, \"warmup_steps\": 2}";
            electra::Trainer trainer("tiny", options);
            const std::size_t tb = 2, tl = 16;
            for (uint32_t step = 0; step < 2; step++) {
                electra_step_stats st = trainer.step(synthetic_ids(tb, tl, 1000, step), tb, tl);
                std::cout << "  step " << st.step << " loss " << st.loss << " disc acc " << st.disc_accuracy << " lr "
                          << st.learning_rate << "\n";
            }
            trainer.save(work + "/checkpoint");
            electra_step_stats a = trainer.step(synthetic_ids(tb, tl, 1000, 2), tb, tl);
            electra::Trainer resumed = electra::Trainer::resume(work + "/checkpoint");
            electra_step_stats b = resumed.step(synthetic_ids(tb, tl, 1000, 2), tb, tl);
            expect(a.loss == b.loss && a.step == b.step, "a resumed trainer repeats the same step exactly");
            std::cout << "  step " << b.step << " after resume: loss " << b.loss << " (first run " << a.loss << ")\n";
            resumed.export_model(work + "/export");
            electra::Session fresh(electra::Model::load(work + "/export"));
            electra::Session snapshot(resumed.model());
            std::vector<int32_t> probe = synthetic_ids(1, tl, 1000, 9);
            std::vector<float> x = fresh.discriminate(probe, 1, tl), y = snapshot.discriminate(probe, 1, tl);
            expect(x == y, "the export and the in-memory snapshot give the same logits");
            std::cout << "  export reloaded: " << x.size() << " logits, identical to the trainer's snapshot\n";
        }
    } catch (const electra::Error &e) {
        std::cerr << "example: " << e.what() << " (status " << e.status() << ")\n";
        return 1;
    }
    if (failures) {
        std::cerr << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "example: ok\n";
    return 0;
}
