package electra_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	electra "github.com/electra-project/electra/bindings/go"
)

// goGroup is a sum all-reduce between goroutines of this process. A call publishes its
// buffer, waits for every rank, sums the buffers in rank order (so every rank computes the
// same bits), waits until no rank reads another's buffer any more, then writes its own.
type goGroup struct {
	mu            sync.Mutex
	cond          *sync.Cond
	n, arrived    int
	generation    int
	bufs          [][]float32
	fail          error // set between calls: every rank's call fails with it at once
	calls, floats int   // rank 0's calls and floats reduced
}

func newGoGroup(n int) *goGroup {
	g := &goGroup{n: n, bufs: make([][]float32, n)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *goGroup) barrier() {
	g.mu.Lock()
	defer g.mu.Unlock()
	gen := g.generation
	g.arrived++
	if g.arrived == g.n {
		g.arrived = 0
		g.generation++
		g.cond.Broadcast()
		return
	}
	for gen == g.generation {
		g.cond.Wait()
	}
}

func (g *goGroup) setFail(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

// rank is rank r's AllReduce.
func (g *goGroup) rank(r int) electra.AllReduce {
	return func(data []float32) error {
		g.mu.Lock()
		fail := g.fail
		g.bufs[r] = data
		if r == 0 {
			g.calls++
			g.floats += len(data)
		}
		g.mu.Unlock()
		if fail != nil {
			return fail
		}
		g.barrier()
		g.mu.Lock()
		bufs := append([][]float32(nil), g.bufs...)
		g.mu.Unlock()
		sum := make([]float32, len(data))
		for q, b := range bufs {
			if len(b) != len(data) {
				// Every rank sees the same lengths, so all of them fail here alike.
				return fmt.Errorf("rank %d reduces %d floats, rank %d %d", q, len(b), r, len(data))
			}
			for i, x := range b {
				sum[i] += x
			}
		}
		g.barrier()
		copy(data, sum)
		return nil
	}
}

// onRanks runs f(r) for r in 0..n-1 on goroutines of their own and returns their errors. A rank
// waiting for a partner that left would block for ever, so the wait is bounded.
func onRanks(tb testing.TB, n int, f func(r int) error) []error {
	tb.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			errs[r] = f(r)
		}(r)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		tb.Fatal("the ranks did not finish: one waits in the all-reduce for a partner")
	}
	return errs
}

func distOptions(extra map[string]interface{}) map[string]interface{} {
	o := map[string]interface{}{"learning_rate": 2e-3, "warmup_steps": 1, "total_steps": 100}
	for k, v := range extra {
		o[k] = v
	}
	return tinyOptions(o)
}

// halfStep is rank r's step k: rows r*half.. of the combined batch trainBatch(k).
func halfStep(tr *electra.Trainer, r, k int) (electra.StepStats, error) {
	const half = trainB / 2
	ids, mask, types := trainBatch(k)
	lo, hi := r*half*trainT, (r+1)*half*trainT
	return tr.Step(ids[lo:hi], mask[lo:hi], types[lo:hi], half, trainT)
}

// sameExport reports whether two exports hold byte-identical weights in both towers.
func sameExport(tb testing.TB, a, b string) bool {
	tb.Helper()
	for _, tower := range []string{"discriminator", "generator"} {
		x, err := os.ReadFile(filepath.Join(a, tower, "model.safetensors"))
		if err != nil {
			tb.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, tower, "model.safetensors"))
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			return false
		}
	}
	return true
}

func export(tb testing.TB, tr *electra.Trainer, dir string) string {
	tb.Helper()
	if err := tr.Export(dir); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Two goroutines as ranks, each stepping its half of every batch, are one trainer with
// accumulate_steps 2 on the whole batch: the same stats and byte-identical weights. Then a
// collective save and a resume of both ranks with their Rank continue the run exactly, and an
// all-reduce that fails on both ranks fails the step with ErrDistributed.
func TestTrainerAllReduceTwoRanks(t *testing.T) {
	const steps = 3
	tmp := t.TempDir()
	g := newGoGroup(2)
	ranks := []*electra.Trainer{
		newTinyTrainer(t, distOptions(map[string]interface{}{"rank": 0, "world_size": 2})),
		newTinyTrainer(t, distOptions(map[string]interface{}{"rank": 1, "world_size": 2})),
	}
	stats := make([][]electra.StepStats, 2)
	for r, err := range onRanks(t, 2, func(r int) error {
		if err := ranks[r].SetAllReduce(g.rank(r)); err != nil {
			return err
		}
		for k := 0; k < steps; k++ {
			s, err := halfStep(ranks[r], r, k)
			if err != nil {
				return err
			}
			stats[r] = append(stats[r], s)
		}
		return nil
	}) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if g.calls == 0 || g.floats == 0 {
		t.Fatalf("the all-reduce ran %d times over %d floats", g.calls, g.floats)
	}

	one := newTinyTrainer(t, distOptions(map[string]interface{}{"accumulate_steps": 2}))
	initial := export(t, one, filepath.Join(tmp, "initial"))
	for k := 0; k < steps; k++ {
		want := step(t, one, k)
		for r := range ranks {
			if stats[r][k] != want {
				t.Fatalf("step %d, rank %d: %+v\n  1 trainer x 2 micro-batches: %+v", k+1, r, stats[r][k], want)
			}
		}
	}
	want := export(t, one, filepath.Join(tmp, "one"))
	for r, tr := range ranks {
		if !sameExport(t, export(t, tr, filepath.Join(tmp, fmt.Sprint("rank", r))), want) {
			t.Fatalf("rank %d's weights differ from the accumulating trainer's", r)
		}
	}
	if sameExport(t, initial, want) {
		t.Fatal("training did not change the weights")
	}

	// Save (collective: rank 0 writes), one more step, then both ranks resume the checkpoint
	// with their own Rank and repeat that step exactly.
	ckpt := filepath.Join(tmp, "ckpt")
	next := make([]electra.StepStats, 2)
	for r, err := range onRanks(t, 2, func(r int) error {
		if err := ranks[r].Save(ckpt); err != nil {
			return err
		}
		var err error
		next[r], err = halfStep(ranks[r], r, steps)
		return err
	}) {
		if err != nil {
			t.Fatalf("rank %d: save, step: %v", r, err)
		}
	}
	resumed := make([]*electra.Trainer, 2)
	for r, err := range onRanks(t, 2, func(r int) error {
		tr, err := electra.ResumeTrainerWithOptions(ckpt, electra.ResumeOptions{Rank: r})
		if err != nil {
			return err
		}
		resumed[r] = tr
		if err := tr.SetAllReduce(g.rank(r)); err != nil {
			return err
		}
		s, err := halfStep(tr, r, steps)
		if err == nil && s != next[r] {
			err = fmt.Errorf("resumed step %+v, uninterrupted %+v", s, next[r])
		}
		return err
	}) {
		if resumed[r] != nil {
			defer resumed[r].Close()
		}
		if err != nil {
			t.Fatalf("rank %d: resume: %v", r, err)
		}
	}

	// An all-reduce that fails fails the step on both ranks, with its error in the message;
	// the ranks may then disagree, so the trainers take no further step.
	g.setFail(errors.New("peer lost"))
	for r, err := range onRanks(t, 2, func(r int) error { _, err := halfStep(resumed[r], r, steps+1); return err }) {
		wantErr(t, fmt.Sprint("failing all-reduce, rank ", r), err, electra.StatusDistributed, "all-reduce returned 1",
			"all-reduce func: peer lost")
		if !errors.Is(err, electra.ErrDistributed) {
			t.Fatalf("rank %d: errors.Is(err, ErrDistributed) is false for %v", r, err)
		}
	}
	for r, err := range onRanks(t, 2, func(r int) error { _, err := halfStep(resumed[r], r, steps+1); return err }) {
		wantErr(t, fmt.Sprint("after a failed all-reduce, rank ", r), err, electra.StatusDistributed,
			"an earlier collective failed")
	}
}

func TestTrainerAllReduceErrors(t *testing.T) {
	tr := newTinyTrainer(t, distOptions(map[string]interface{}{"rank": 0, "world_size": 2}))
	ids, mask, types := trainBatch(0)
	_, err := tr.Step(ids, mask, types, trainB, trainT)
	wantErr(t, "world_size 2 without an all-reduce", err, electra.StatusInvalidArgument, "electra_trainer_set_allreduce")
	wantErr(t, "nil func", tr.SetAllReduce(nil), electra.StatusNullPointer, "allreduce")

	// SetAllReduce is itself collective (the ranks compare their starting points), so a func
	// that fails shows there already.
	err = tr.SetAllReduce(func([]float32) error { return errors.New("no route to rank 1") })
	wantErr(t, "erroring func", err, electra.StatusDistributed, "all-reduce returned 1", "no route to rank 1")
	err = tr.SetAllReduce(func(data []float32) error {
		_ = data[len(data)] // out of range: a runtime panic
		return nil
	})
	wantErr(t, "panicking func", err, electra.StatusDistributed, "all-reduce returned 2", "panicked", "index out of range")
	err = tr.SetAllReduce(func([]float32) error { panic("kaboom") })
	wantErr(t, "panic(string)", err, electra.StatusDistributed, "panicked: kaboom")
	// None of them was set: the step still asks for one.
	_, err = tr.Step(ids, mask, types, trainB, trainT)
	wantErr(t, "after failed SetAllReduce calls", err, electra.StatusInvalidArgument, "electra_trainer_set_allreduce")

	// Options that do not fit together are refused at creation.
	_, err = electra.NewTrainer("tiny", distOptions(map[string]interface{}{"rank": 2, "world_size": 2}))
	wantErr(t, "rank outside world_size", err, electra.StatusInvalidArgument, "rank")
	if electra.StatusDistributed.String() != "distributed run failed" {
		t.Fatalf("StatusDistributed.String() = %q", electra.StatusDistributed.String())
	}

	tr.Close()
	wantErr(t, "closed trainer", tr.SetAllReduce(func([]float32) error { return nil }), electra.StatusInvalidHandle, "closed")
}
