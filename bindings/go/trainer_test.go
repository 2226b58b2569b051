package electra_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	electra "github.com/electra-project/electra/bindings/go"
)

const (
	trainB     = 4
	trainT     = 16
	trainVocab = 200
)

// tinyOptions are the options of the "tiny" preset used throughout; extra entries override.
func tinyOptions(extra map[string]interface{}) map[string]interface{} {
	o := map[string]interface{}{
		"vocab_size": trainVocab, "max_seq_len": 32, "mask_token_id": 4,
		"special_token_ids": []int{0, 1, 2, 3, 4}, "threads": 1, "seed": 7,
	}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func newTinyTrainer(tb testing.TB, extra map[string]interface{}) *electra.Trainer {
	tb.Helper()
	tr, err := electra.NewTrainer("tiny", tinyOptions(extra))
	if err != nil {
		tb.Fatalf("NewTrainer: %v", err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// trainBatch is a deterministic batch k: [CLS]=2 ... [SEP]=3, padded with 0 (mask 0).
func trainBatch(k int) (ids, mask, types []int32) {
	ids, mask, types = make([]int32, trainB*trainT), make([]int32, trainB*trainT), make([]int32, trainB*trainT)
	for r := 0; r < trainB; r++ {
		n := trainT - (r*3+k)%7
		for i := 0; i < n; i++ {
			p := r*trainT + i
			switch {
			case i == 0:
				ids[p] = 2
			case i == n-1:
				ids[p] = 3
			default:
				ids[p] = int32(5 + (r*17+i*7+k*3)%(trainVocab-5))
			}
			mask[p] = 1
			if i >= n/2 {
				types[p] = 1
			}
		}
	}
	return
}

func step(tb testing.TB, tr *electra.Trainer, k int) electra.StepStats {
	tb.Helper()
	ids, mask, types := trainBatch(k)
	s, err := tr.Step(ids, mask, types, trainB, trainT)
	if err != nil {
		tb.Fatalf("Step(%d): %v", k, err)
	}
	return s
}

func finite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

func TestTrainerSteps(t *testing.T) {
	tr := newTinyTrainer(t, nil)
	for k := 1; k <= 4; k++ {
		s := step(t, tr, k)
		if s.Step != uint64(k) {
			t.Fatalf("step %d: stats.Step = %d", k, s.Step)
		}
		if !finite(s.Loss) || s.Loss <= 0 || !finite(s.MLMLoss) || !finite(s.DiscLoss) || !finite(s.GradNorm) ||
			s.DiscAccuracy < 0 || s.DiscAccuracy > 1 || !(s.LearningRate >= 0) {
			t.Fatalf("step %d: stats %+v", k, s)
		}
	}
	// nil mask and types are accepted.
	ids, _, _ := trainBatch(0)
	if s, err := tr.Step(ids, nil, nil, trainB, trainT); err != nil || s.Step != 5 {
		t.Fatalf("Step without mask/types: %+v, %v", s, err)
	}
}

func TestTrainerOptionForms(t *testing.T) {
	b, _ := json.Marshal(tinyOptions(nil))
	for name, opts := range map[string]interface{}{
		"string": string(b), "bytes": b, "raw": json.RawMessage(b),
		"struct": struct {
			VocabSize int   `json:"vocab_size"`
			MaskToken int   `json:"mask_token_id"`
			Special   []int `json:"special_token_ids"`
			Threads   int   `json:"threads"`
		}{trainVocab, 4, []int{0, 1, 2, 3, 4}, 1},
	} {
		tr, err := electra.NewTrainer("tiny", opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		step(t, tr, 0)
		tr.Close()
	}
}

// The "dropout" option: false turns it off, a probability sets it; the same options give the
// same step (the masks are seeded), different ones a different step; out of range is refused.
func TestTrainerDropoutOption(t *testing.T) {
	loss := func(dropout interface{}) float32 {
		tr := newTinyTrainer(t, map[string]interface{}{"dropout": dropout})
		return step(t, tr, 0).Loss
	}
	off, p3, again := loss(false), loss(0.3), loss(0.3)
	if p3 != again {
		t.Fatalf("dropout 0.3 twice: losses %v and %v differ", p3, again)
	}
	if p3 == off {
		t.Fatalf("dropout 0.3 and off give the same loss %v", p3)
	}
	_, err := electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"dropout": 1.5}))
	wantErr(t, "dropout out of range", err, electra.StatusInvalidArgument, "dropout")
}

func TestTrainerBadOptions(t *testing.T) {
	_, err := electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"learning_rat": 0.1}))
	wantErr(t, "unknown key", err, electra.StatusInvalidArgument, "learning_rat")
	_, err = electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"mask_prob": 1.5}))
	wantErr(t, "out of range", err, electra.StatusInvalidArgument, "mask_prob")
	_, err = electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"seed": "seven"}))
	wantErr(t, "wrong type", err, electra.StatusInvalidArgument, "options")
	_, err = electra.NewTrainer("tiny", `{"vocab_size": 200,`)
	wantErr(t, "malformed JSON", err, electra.StatusInvalidArgument, "options")
	_, err = electra.NewTrainer("tiny", map[string]interface{}{"x": func() {}})
	wantErr(t, "unencodable options", err, electra.StatusInvalidArgument, "options")
	_, err = electra.NewTrainer("huge", tinyOptions(nil))
	wantErr(t, "unknown preset", err, electra.StatusInvalidArgument, "huge")
	_, err = electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"mask_token_id": 5000}))
	wantErr(t, "mask token outside the vocabulary", err, electra.StatusInvalidArgument, "mask_token_id")
	_, err = electra.ResumeTrainer(filepath.Join(t.TempDir(), "nothing-here"))
	wantErr(t, "resume from a missing dir", err, electra.StatusIO, "nothing-here")
}

func TestTrainerBadInput(t *testing.T) {
	tr := newTinyTrainer(t, nil)
	ids, mask, types := trainBatch(0)
	bad := append([]int32(nil), ids...)
	bad[5] = trainVocab
	_, err := tr.Step(bad, mask, types, trainB, trainT)
	wantErr(t, "id out of range", err, electra.StatusInvalidArgument)
	_, err = tr.Step(ids[:10], mask, types, trainB, trainT)
	wantErr(t, "short ids", err, electra.StatusShape, "len(ids)")
	_, err = tr.Step(ids, mask, types[:3], trainB, trainT)
	wantErr(t, "short types", err, electra.StatusShape, "len(types)")
	_, err = tr.Step(ids, mask, types, 0, trainT)
	wantErr(t, "empty batch", err, electra.StatusInvalidArgument)
	long := make([]int32, 33)
	for i := range long {
		long[i] = 9
	}
	_, err = tr.Step(long, nil, nil, 1, 33)
	wantErr(t, "seqLen > max_seq_len", err, electra.StatusInvalidArgument)
	// Nothing was applied: the next step is the first.
	if s := step(t, tr, 0); s.Step != 1 {
		t.Fatalf("after refused steps: Step = %d", s.Step)
	}
	wantErr(t, "save NUL", tr.Save("a\x00b"), electra.StatusInvalidArgument, "NUL")
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "save under a file", tr.Save(filepath.Join(notDir, "sub")), electra.StatusIO)
}

// Save, step twice more; resume and step the same two batches: bit-identical. Export, load the
// export and compare its discriminator with the trainer's snapshot.
func TestTrainerSaveResumeExport(t *testing.T) {
	tr := newTinyTrainer(t, nil)
	step(t, tr, 0)
	step(t, tr, 1)
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := tr.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ckpt, "trainer.safetensors")); err != nil {
		t.Fatal(err)
	}
	a2, a3 := step(t, tr, 2), step(t, tr, 3)

	rt, err := electra.ResumeTrainer(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	b2, b3 := step(t, rt, 2), step(t, rt, 3)
	if a2 != b2 || a3 != b3 || b3.Step != 4 {
		t.Fatalf("resumed run differs:\n  %+v %+v\n  %+v %+v", a2, a3, b2, b3)
	}

	snap, err := tr.Model()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	info, _ := snap.Info()
	if !info.HasDiscriminator || !info.HasGenerator || info.VocabSize != trainVocab {
		t.Fatalf("snapshot Info() = %+v", info)
	}
	export := filepath.Join(t.TempDir(), "export")
	if err := tr.Export(export); err != nil {
		t.Fatal(err)
	}
	step(t, tr, 4) // changes the trainer, not the snapshot nor the export
	loaded := mustLoad(t, export)
	ids, mask, types := trainBatch(9)
	want, err := mustSession(t, snap).Discriminate(ids, mask, types, trainB, trainT)
	if err != nil {
		t.Fatal(err)
	}
	got, err := mustSession(t, loaded).Discriminate(ids, mask, types, trainB, trainT)
	if err != nil {
		t.Fatal(err)
	}
	assertSameBits(t, "export vs snapshot", got, want)
	gw, err := mustSession(t, snap).GeneratorLogits(ids, mask, types, trainB, trainT)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := mustSession(t, loaded).GeneratorLogits(ids, mask, types, trainB, trainT)
	if err != nil {
		t.Fatal(err)
	}
	assertSameBits(t, "export vs snapshot (generator)", gg, gw)

	// A trainer can start from the exported pair.
	t2, err := electra.NewTrainer(export, tinyOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer t2.Close()
	step(t, t2, 0)
}

func TestTrainerCancelBeforeStep(t *testing.T) {
	tr := newTinyTrainer(t, nil)
	step(t, tr, 0)
	tr.Cancel()
	ids, mask, types := trainBatch(1)
	_, err := tr.Step(ids, mask, types, trainB, trainT)
	wantErr(t, "cancelled step", err, electra.StatusCancelled)
	if !errors.Is(err, electra.ErrCancelled) {
		t.Fatal("errors.Is(err, ErrCancelled) is false")
	}
	if s := step(t, tr, 1); s.Step != 2 {
		t.Fatalf("after a cancelled step: Step = %d, want 2", s.Step)
	}
}

// Cancel from another goroutine while one steps in a loop: one step stops with ErrCancelled,
// no update is lost or applied twice, and training continues.
func TestTrainerCancelFromAnotherGoroutine(t *testing.T) {
	tr := newTinyTrainer(t, map[string]interface{}{"max_seq_len": 64})
	const b, T = 8, 64
	ids, mask := make([]int32, b*T), make([]int32, b*T)
	for i := range ids {
		ids[i] = int32(5 + (i*31)%(trainVocab-5))
		mask[i] = 1
	}
	type result struct {
		last      uint64
		cancelled bool
		err       error
	}
	done := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		var last uint64
		for i := 0; i < 100000; i++ {
			s, err := tr.Step(ids, mask, nil, b, T)
			if i == 0 {
				close(started)
			}
			if errors.Is(err, electra.ErrCancelled) {
				done <- result{last, true, nil}
				return
			}
			if err != nil {
				done <- result{last, false, err}
				return
			}
			if s.Step != last+1 {
				done <- result{last, false, errors.New("step count skipped")}
				return
			}
			last = s.Step
		}
		done <- result{last, false, errors.New("never cancelled")}
	}()
	<-started
	time.Sleep(20 * time.Millisecond)
	tr.Cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the stepping goroutine did not stop")
	}
	if r.err != nil || !r.cancelled {
		t.Fatalf("cancel: %+v", r)
	}
	s, err := tr.Step(ids, mask, nil, b, T)
	if err != nil || s.Step != r.last+1 {
		t.Fatalf("after cancel: %+v, %v (last completed step %d)", s, err, r.last)
	}
}

// Steps from several goroutines on one trainer are serialised: every update is counted once.
func TestTrainerConcurrentSteps(t *testing.T) {
	tr := newTinyTrainer(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				ids, mask, types := trainBatch(w + i)
				if _, err := tr.Step(ids, mask, types, trainB, trainT); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := step(t, tr, 0); s.Step != 13 {
		t.Fatalf("after 12 concurrent steps: Step = %d", s.Step)
	}
}
