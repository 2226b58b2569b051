package electra_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	electra "github.com/electra-project/electra/bindings/go"
)

// wantErr checks that err is an *electra.Error with the code and a message containing every
// fragment.
func wantErr(tb testing.TB, what string, err error, code electra.Status, fragments ...string) {
	tb.Helper()
	var e *electra.Error
	if !errors.As(err, &e) {
		tb.Fatalf("%s: want an *electra.Error with code %v, got %v", what, code, err)
	}
	if e.Code != code {
		tb.Fatalf("%s: code %v (%d), want %v (%d); message %q", what, e.Code, e.Code, code, code, e.Message)
	}
	if !errors.Is(err, &electra.Error{Code: code}) {
		tb.Fatalf("%s: errors.Is does not match the code", what)
	}
	for _, f := range fragments {
		if !strings.Contains(e.Message, f) {
			tb.Fatalf("%s: message %q lacks %q", what, e.Message, f)
		}
	}
	if !strings.HasPrefix(err.Error(), "electra: ") {
		tb.Fatalf("%s: Error() = %q", what, err.Error())
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model")
	_, err := electra.LoadModel(missing)
	wantErr(t, "missing dir", err, electra.StatusIO, "no-such-model")

	_, err = electra.LoadModel("bad\x00path")
	wantErr(t, "NUL in path", err, electra.StatusInvalidArgument, "NUL")

	// A directory with a valid config but a corrupt weights file.
	dir := t.TempDir()
	cfg, err := os.ReadFile(fixture("relu_act", "discriminator", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = electra.LoadModel(dir)
	wantErr(t, "corrupt weights", err, electra.StatusFormat, "model.safetensors")
}

func TestInputErrors(t *testing.T) {
	e := loadExpected(t, "emb_lt_hidden")
	m := mustLoad(t, fixture("emb_lt_hidden"))
	info, _ := m.Info()
	s := mustSession(t, m)
	n := e.batch * e.seqLen
	clone := func(v []int32) []int32 { return append([]int32(nil), v...) }

	bad := clone(e.ids)
	bad[3] = int32(info.VocabSize)
	_, err := s.Discriminate(bad, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "id = vocab_size", err, electra.StatusInvalidArgument, fmt.Sprint(info.VocabSize))
	bad[3] = -1
	_, err = s.Discriminate(bad, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "negative id", err, electra.StatusInvalidArgument)

	badTypes := clone(e.types)
	badTypes[0] = int32(info.TypeVocabSize)
	_, err = s.HiddenStates(e.ids, e.mask, badTypes, e.batch, e.seqLen)
	wantErr(t, "token type out of range", err, electra.StatusInvalidArgument)

	badMask := clone(e.mask)
	badMask[0] = 7
	_, err = s.Discriminate(e.ids, badMask, e.types, e.batch, e.seqLen)
	wantErr(t, "mask not 0/1", err, electra.StatusInvalidArgument)

	long := make([]int32, info.MaxPositionEmbeddings+1)
	for i := range long {
		long[i] = 5
	}
	_, err = s.Discriminate(long, nil, nil, 1, len(long))
	wantErr(t, "seqLen > max positions", err, electra.StatusInvalidArgument, "max_position_embeddings")

	// Checked on the Go side, before the library sees a pointer.
	_, err = s.Discriminate(e.ids[:n-1], e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "short ids", err, electra.StatusShape, "len(ids)")
	_, err = s.Discriminate(e.ids, e.mask[:n-1], e.types, e.batch, e.seqLen)
	wantErr(t, "short mask", err, electra.StatusShape, "len(mask)")
	_, err = s.GeneratorLogits(e.ids, e.mask, []int32{}, e.batch, e.seqLen)
	wantErr(t, "empty types", err, electra.StatusShape, "len(types)")
	_, err = s.Discriminate(append(clone(e.ids), 5), e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "long ids", err, electra.StatusShape, "len(ids)")
	_, err = s.Discriminate(nil, nil, nil, 0, 4)
	wantErr(t, "empty batch", err, electra.StatusInvalidArgument, "positive")
	_, err = s.Discriminate(e.ids, nil, nil, -1, -n)
	wantErr(t, "negative batch", err, electra.StatusInvalidArgument, "positive")
	_, err = s.Discriminate(e.ids, nil, nil, 1<<40, 1<<40)
	wantErr(t, "overflowing batch", err, electra.StatusInvalidArgument, "too large")
	_, err = s.DiscriminateInto(make([]float32, n-1), e.ids, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "short dst", err, electra.StatusBufferTooSmall)
	_, err = s.HiddenStatesInto(nil, e.ids, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "nil dst", err, electra.StatusBufferTooSmall)

	// The session still works after every refusal.
	got, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "after errors", got, e.floats(t, "disc_logits"))
}

func TestClosedHandles(t *testing.T) {
	e := loadExpected(t, "relu_act")
	m, err := electra.LoadModel(fixture("relu_act"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := electra.NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // Close is idempotent
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "closed session", err, electra.StatusInvalidHandle, "closed")
	_, err = s.GeneratorLogitsInto(make([]float32, 10000), e.ids, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "closed session (into)", err, electra.StatusInvalidHandle, "closed")

	m.Close()
	m.Close()
	_, err = m.Info()
	wantErr(t, "closed model Info", err, electra.StatusInvalidHandle, "closed")
	_, err = electra.NewSession(m)
	wantErr(t, "closed model NewSession", err, electra.StatusInvalidHandle, "closed")
	wantErr(t, "closed model Save", m.Save(t.TempDir()), electra.StatusInvalidHandle, "closed")
	_, err = electra.NewSession(nil)
	wantErr(t, "nil model", err, electra.StatusInvalidHandle)

	tr := newTinyTrainer(t, nil)
	tr.Close()
	tr.Close()
	tr.Cancel() // a no-op
	ids, mask, types := trainBatch(0)
	_, err = tr.Step(ids, mask, types, trainB, trainT)
	wantErr(t, "closed trainer Step", err, electra.StatusInvalidHandle, "closed")
	wantErr(t, "closed trainer Save", tr.Save(t.TempDir()), electra.StatusInvalidHandle, "closed")
	wantErr(t, "closed trainer Export", tr.Export(t.TempDir()), electra.StatusInvalidHandle, "closed")
	_, err = tr.Model()
	wantErr(t, "closed trainer Model", err, electra.StatusInvalidHandle, "closed")
}

// Each goroutine sees the message of its own failure, although goroutines migrate between OS
// threads and the library keeps one message per thread.
func TestErrorMessagesPerGoroutine(t *testing.T) {
	root := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				name := fmt.Sprintf("missing-%d-%d", w, i)
				_, err := electra.LoadModel(filepath.Join(root, name))
				var e *electra.Error
				if !errors.As(err, &e) || !strings.Contains(e.Message, name+"/") && !strings.HasSuffix(e.Message, name) &&
					!strings.Contains(e.Message, name+":") && !strings.Contains(e.Message, name+" ") {
					errs <- fmt.Errorf("goroutine %d: want a message about %s, got %v", w, name, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSaveModelRoundTrip(t *testing.T) {
	e := loadExpected(t, "emb_lt_hidden")
	m := mustLoad(t, fixture("emb_lt_hidden"))
	dir := filepath.Join(t.TempDir(), "saved")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"discriminator", "generator"} {
		if _, err := os.Stat(filepath.Join(dir, sub, "config.json")); err != nil {
			t.Fatal(err)
		}
	}
	want, err := mustSession(t, m).GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	got, err := mustSession(t, mustLoad(t, dir)).GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertSameBits(t, "saved model", got, want)
}
