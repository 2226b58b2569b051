package electra_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	electra "github.com/electra-project/electra/bindings/go"
)

// clsData is cls_train.safetensors of emb_lt_hidden: a batch, labels and PyTorch's logits.
type clsData struct {
	expected
	labels []int32
}

func loadCls(tb testing.TB) clsData {
	tb.Helper()
	f, err := readSafetensors(fixture("emb_lt_hidden", "cls_train.safetensors"))
	if err != nil {
		tb.Fatal(err)
	}
	ids := f["input_ids"]
	return clsData{
		expected: expected{ids: ids.ints(tb), mask: f["attention_mask"].ints(tb), types: f["token_type_ids"].ints(tb),
			batch: ids.shape[0], seqLen: ids.shape[1], f: f},
		labels: f["labels"].ints(tb),
	}
}

func TestClassifierParity(t *testing.T) {
	c := loadCls(t)
	m := mustLoad(t, fixture("emb_lt_hidden", "classifier"))
	info, _ := m.Info()
	if info.NumLabels != 3 {
		t.Fatalf("Info() = %+v", info)
	}
	s := mustSession(t, m)
	logits, err := s.Classify(c.ids, c.mask, c.types, c.batch, c.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "cls_logits", logits, c.floats(t, "cls_logits"))
	buf := make([]float32, c.batch*3)
	if _, err := s.ClassifyInto(buf, c.ids, c.mask, c.types, c.batch, c.seqLen); err != nil {
		t.Fatal(err)
	}
	assertSameBits(t, "ClassifyInto", buf, logits)
	_, err = s.ClassifyInto(buf[:c.batch*3-1], c.ids, c.mask, c.types, c.batch, c.seqLen)
	wantErr(t, "short dst", err, electra.StatusBufferTooSmall)

	d := mustSession(t, mustLoad(t, fixture("emb_lt_hidden", "discriminator")))
	_, err = d.Classify(c.ids, c.mask, c.types, c.batch, c.seqLen)
	wantErr(t, "classify without a head", err, electra.StatusUnsupported, "classification head")
}

func TestFineTunerTrainsSavesAndContinues(t *testing.T) {
	c := loadCls(t)
	opts := map[string]interface{}{"learning_rate": 1e-3, "seed": 3, "threads": 1}
	f, err := electra.NewFineTuner(fixture("emb_lt_hidden", "discriminator"), 3, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var first, last electra.FineTuneStats
	for k := 1; k <= 10; k++ {
		s, err := f.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen)
		if err != nil {
			t.Fatal(err)
		}
		if s.Step != uint64(k) || !finite(s.Loss) || s.Loss <= 0 || !finite(s.GradNorm) || s.Accuracy < 0 || s.Accuracy > 1 {
			t.Fatalf("step %d: %+v", k, s)
		}
		if k == 1 {
			first = s
		}
		last = s
	}
	if !(last.Loss < first.Loss) {
		t.Fatalf("loss did not fall on a repeated batch: %v -> %v", first.Loss, last.Loss)
	}
	if _, err := f.Step(c.ids, nil, nil, c.labels, c.batch, c.seqLen); err != nil {
		t.Fatalf("step without mask/types: %v", err)
	}

	dir := filepath.Join(t.TempDir(), "cls")
	if err := f.Save(dir); err != nil {
		t.Fatal(err)
	}
	m := mustLoad(t, dir)
	if info, _ := m.Info(); info.NumLabels != 3 {
		t.Fatalf("saved classifier: %+v", info)
	}
	logits, err := mustSession(t, m).Classify(c.ids, c.mask, c.types, c.batch, c.seqLen)
	if err != nil || len(logits) != c.batch*3 {
		t.Fatalf("classify the saved classifier: %d values, %v", len(logits), err)
	}
	for _, v := range logits {
		if !finite(v) {
			t.Fatalf("non-finite logit in %v", logits)
		}
	}

	// Continue from the saved classifier (0 = keep its label count).
	g, err := electra.NewFineTuner(dir, 0, `{"threads": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if s, err := g.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen); err != nil || s.Step != 1 {
		t.Fatalf("continued fine-tuning: %+v, %v", s, err)
	}
}

// The "pool" option: a mean-pooled head learns the repeated batch, is saved with
// "classifier_pooling": "mean", classifies after a reload as the fine-tuner left it, and is
// continued only as a mean-pooled head.
func TestFineTunerMeanPooling(t *testing.T) {
	c := loadCls(t)
	f, err := electra.NewFineTuner(fixture("emb_lt_hidden", "discriminator"), 3,
		map[string]interface{}{"learning_rate": 1e-3, "threads": 1, "pool": "mean", "dropout": false})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var first, last electra.FineTuneStats
	for k := 1; k <= 10; k++ {
		if last, err = f.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen); err != nil {
			t.Fatal(err)
		}
		if k == 1 {
			first = last
		}
	}
	if !(last.Loss < first.Loss) {
		t.Fatalf("loss did not fall on a repeated batch: %v -> %v", first.Loss, last.Loss)
	}
	dir := filepath.Join(t.TempDir(), "mean")
	if err := f.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !strings.Contains(string(cfg), `"classifier_pooling": "mean"`) {
		t.Fatalf("config.json of a mean-pooled head (%v):\n%s", err, cfg)
	}
	logits, err := mustSession(t, mustLoad(t, dir)).Classify(c.ids, c.mask, c.types, c.batch, c.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	// The reloaded head scores the batch it learned: its loss is the fine-tuner's last or lower.
	loss := 0.0
	for r := 0; r < c.batch; r++ {
		row := logits[r*3 : r*3+3]
		max := math.Max(float64(row[0]), math.Max(float64(row[1]), float64(row[2])))
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - max)
		}
		loss += max + math.Log(sum) - float64(row[c.labels[r]])
	}
	if loss /= float64(c.batch); !(loss < float64(first.Loss)) {
		t.Fatalf("reloaded mean-pooled head: loss %v, first step %v", loss, first.Loss)
	}
	_, err = electra.NewFineTuner(dir, 0, `{"pool": "cls"}`)
	wantErr(t, "a [CLS] head over a mean-pooled one", err, electra.StatusInvalidArgument, "pools mean")
	g, err := electra.NewFineTuner(dir, 0, `{"threads": 1}`)
	if err != nil {
		t.Fatalf("continuing with its own pooling: %v", err)
	}
	g.Close()
	_, err = electra.NewFineTuner(fixture("emb_lt_hidden", "discriminator"), 3, `{"pool": "max"}`)
	wantErr(t, "unknown pooling", err, electra.StatusInvalidArgument, "pool")
}

func TestFineTunerErrors(t *testing.T) {
	c := loadCls(t)
	disc := fixture("emb_lt_hidden", "discriminator")
	_, err := electra.NewFineTuner(disc, 0, nil)
	wantErr(t, "0 labels for a new head", err, electra.StatusInvalidArgument, "two labels")
	_, err = electra.NewFineTuner(disc, -1, nil)
	wantErr(t, "negative labels", err, electra.StatusInvalidArgument, "negative")
	// A lone masked-LM checkpoint (the mlm objective's output) has the same encoder.
	fromMlm, err := electra.NewFineTuner(fixture("emb_lt_hidden", "generator"), 2, nil)
	if err != nil {
		t.Fatalf("a generator checkpoint fine-tunes too: %v", err)
	}
	fromMlm.Close()
	_, err = electra.NewFineTuner(disc, 2, `{"layerwise_lr_decy": 0.9}`)
	wantErr(t, "unknown option", err, electra.StatusInvalidArgument, "layerwise_lr_decy")
	_, err = electra.NewFineTuner(filepath.Join(t.TempDir(), "nope"), 2, nil)
	wantErr(t, "missing dir", err, electra.StatusIO, "nope")

	f, err := electra.NewFineTuner(disc, 3, `{"threads": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Step(c.ids, c.mask, c.types, []int32{0, 1, 3}, c.batch, c.seqLen)
	wantErr(t, "label out of range", err, electra.StatusInvalidArgument, "label 3")
	_, err = f.Step(c.ids, c.mask, c.types, c.labels[:c.batch-1], c.batch, c.seqLen)
	wantErr(t, "short labels", err, electra.StatusShape, "len(labels)")
	_, err = f.Step(c.ids[1:], c.mask, c.types, c.labels, c.batch, c.seqLen)
	wantErr(t, "short ids", err, electra.StatusShape, "len(ids)")
	if s, err := f.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen); err != nil || s.Step != 1 {
		t.Fatalf("after refused steps: %+v, %v", s, err)
	}
	f.Close()
	f.Close()
	_, err = f.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen)
	wantErr(t, "closed fine-tuner Step", err, electra.StatusInvalidHandle, "closed")
	wantErr(t, "closed fine-tuner Save", f.Save(t.TempDir()), electra.StatusInvalidHandle, "closed")
}

func TestFineTunerConcurrentSteps(t *testing.T) {
	c := loadCls(t)
	f, err := electra.NewFineTuner(fixture("emb_lt_hidden", "discriminator"), 3, `{"threads": 1}`)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				if _, err := f.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s, err := f.Step(c.ids, c.mask, c.types, c.labels, c.batch, c.seqLen); err != nil || s.Step != 13 {
		t.Fatalf("after 12 concurrent steps: %+v, %v", s, err)
	}
}
