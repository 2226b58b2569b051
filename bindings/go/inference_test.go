package electra_test

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sync"
	"testing"

	electra "github.com/electra-project/electra/bindings/go"
)

func mustLoad(tb testing.TB, path string) *electra.Model {
	tb.Helper()
	m, err := electra.LoadModel(path)
	if err != nil {
		tb.Fatalf("LoadModel(%s): %v", path, err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

func mustSession(tb testing.TB, m *electra.Model) *electra.Session {
	tb.Helper()
	s, err := electra.NewSession(m)
	if err != nil {
		tb.Fatalf("NewSession: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestVersionAndABI(t *testing.T) {
	if v := electra.Version(); !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
		t.Errorf("Version() = %q", v)
	}
	if electra.ABIVersion() != electra.HeaderABIVersion {
		t.Errorf("library ABI %d, header ABI %d", electra.ABIVersion(), electra.HeaderABIVersion)
	}
	if err := electra.CheckABI(); err != nil {
		t.Error(err)
	}
	for code, name := range map[electra.Status]string{
		electra.StatusOK: "ok", electra.StatusInvalidArgument: "invalid argument", electra.StatusCancelled: "cancelled",
		electra.StatusPanic: "panic", electra.Status(999): "unknown status",
	} {
		if code.String() != name {
			t.Errorf("Status(%d).String() = %q, want %q", int32(code), code.String(), name)
		}
	}
}

func TestDiscriminatorParity(t *testing.T) {
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			e := loadExpected(t, c)
			m := mustLoad(t, fixture(c, "discriminator"))
			info, err := m.Info()
			if err != nil {
				t.Fatal(err)
			}
			hidden := e.f["disc_hidden"].shape[2]
			if !info.HasDiscriminator || info.HasGenerator || info.HiddenSize != hidden || info.NumParameters == 0 ||
				info.MaxPositionEmbeddings < e.seqLen || info.NumHiddenLayers <= 0 {
				t.Fatalf("Info() = %+v", info)
			}
			s := mustSession(t, m)
			logits, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, c+" disc_logits", logits, e.floats(t, "disc_logits"))
			h, err := s.HiddenStates(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, c+" disc_hidden", h, e.floats(t, "disc_hidden"))
			_, err = s.GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if !errors.Is(err, electra.ErrUnsupported) {
				t.Fatalf("generator logits from a lone discriminator: %v", err)
			}
		})
	}
}

func TestGeneratorParity(t *testing.T) {
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			e := loadExpected(t, c)
			m := mustLoad(t, fixture(c, "generator"))
			info, _ := m.Info()
			vocab := e.f["gen_logits"].shape[2]
			if info.HasDiscriminator || !info.HasGenerator || info.VocabSize != vocab {
				t.Fatalf("Info() = %+v", info)
			}
			s := mustSession(t, m)
			logits, err := s.GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, c+" gen_logits", logits, e.floats(t, "gen_logits"))
			if _, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen); !errors.Is(err, electra.ErrUnsupported) {
				t.Fatalf("discriminate with a lone generator: %v", err)
			}
		})
	}
}

func TestPairLayoutParity(t *testing.T) {
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			e := loadExpected(t, c)
			m := mustLoad(t, fixture(c))
			info, _ := m.Info()
			if !info.HasDiscriminator || !info.HasGenerator || info.GeneratorHiddenSize != e.f["gen_hidden"].shape[2] {
				t.Fatalf("Info() = %+v", info)
			}
			s := mustSession(t, m)
			d, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, c+" disc_logits", d, e.floats(t, "disc_logits"))
			g, err := s.GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, c+" gen_logits", g, e.floats(t, "gen_logits"))
		})
	}
}

func TestOptionalInputsAndInto(t *testing.T) {
	e := loadExpected(t, "emb_lt_hidden")
	s := mustSession(t, mustLoad(t, fixture("emb_lt_hidden")))
	n := e.batch * e.seqLen
	ones, zeros := make([]int32, n), make([]int32, n)
	for i := range ones {
		ones[i] = 1
	}
	explicit, err := s.Discriminate(e.ids, ones, zeros, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := s.Discriminate(e.ids, nil, nil, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertSameBits(t, "nil mask/types = ones/zeros", implicit, explicit)

	// Into variants write into the caller's buffer, which may be longer than needed.
	info := s.Info()
	buf := make([]float32, n*info.VocabSize+7)
	for i := range buf {
		buf[i] = -42
	}
	got, err := s.GeneratorLogitsInto(buf, e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n*info.VocabSize || &got[0] != &buf[0] || buf[len(buf)-1] != -42 {
		t.Fatalf("GeneratorLogitsInto returned %d values (buffer %d)", len(got), len(buf))
	}
	assertClose(t, "GeneratorLogitsInto", got, e.floats(t, "gen_logits"))
	hb := make([]float32, n*info.HiddenSize)
	if _, err := s.HiddenStatesInto(hb, e.ids, e.mask, e.types, e.batch, e.seqLen); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "HiddenStatesInto", hb, e.floats(t, "disc_hidden"))
	db := make([]float32, n)
	if _, err := s.DiscriminateInto(db, e.ids, e.mask, e.types, e.batch, e.seqLen); err != nil {
		t.Fatal(err)
	}
	assertClose(t, "DiscriminateInto", db, e.floats(t, "disc_logits"))
}

// Many goroutines share one Model, each with its own Session; every result is bit-identical.
func TestSharedModelManyGoroutines(t *testing.T) {
	e := loadExpected(t, "emb_eq_hidden")
	m := mustLoad(t, fixture("emb_eq_hidden"))
	ref, err := mustSession(t, m).Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	refGen, err := mustSession(t, m).GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	const workers, iters = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s, err := electra.NewSession(m)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for i := 0; i < iters; i++ {
				var got, want []float32
				if (w+i)%2 == 0 {
					got, err = s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
					want = ref
				} else {
					got, err = s.GeneratorLogits(e.ids, e.mask, e.types, e.batch, e.seqLen)
					want = refGen
				}
				if err != nil {
					errs <- err
					return
				}
				for k := range got {
					if got[k] != want[k] {
						errs <- fmt.Errorf("worker %d iteration %d: element %d differs: %g vs %g", w, i, k, got[k], want[k])
						return
					}
				}
				runtime.Gosched()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// One Session used from many goroutines at once is serialised by the binding, not corrupted.
func TestOneSessionManyGoroutines(t *testing.T) {
	e := loadExpected(t, "relu_act")
	s := mustSession(t, mustLoad(t, fixture("relu_act", "discriminator")))
	want := e.floats(t, "disc_hidden")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				got, err := s.HiddenStates(e.ids, e.mask, e.types, e.batch, e.seqLen)
				if err == nil && len(got) != len(want) {
					err = fmt.Errorf("got %d values", len(got))
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatal(failures)
	}
}

// A session keeps the weights alive after its Model is closed.
func TestSessionOutlivesModel(t *testing.T) {
	e := loadExpected(t, "gelu_new_act")
	m, err := electra.LoadModel(fixture("gelu_new_act", "discriminator"))
	if err != nil {
		t.Fatal(err)
	}
	s := mustSession(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "after Model.Close", got, e.floats(t, "disc_logits"))
}

// Handles dropped without Close are freed by finalizers (this must not crash).
func TestFinalizers(t *testing.T) {
	e := loadExpected(t, "gelu_new_act")
	for i := 0; i < 20; i++ {
		m, err := electra.LoadModel(fixture("gelu_new_act"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := electra.NewSession(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
	}
	runtime.GC()
	runtime.GC()
}
