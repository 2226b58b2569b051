package electra_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	electra "github.com/electra-project/electra/bindings/go"
)

// cudaCount is DeviceCount(DeviceCUDA): a count, or ErrCUDA when the library has no CUDA or the
// machine no driver. The default build (cargo build --release --lib, no `cuda` feature) on a
// machine without a GPU, as where these tests usually run, gives the error.
func cudaCount(tb testing.TB) (int, bool) {
	tb.Helper()
	n, err := electra.DeviceCount(electra.DeviceCUDA)
	if err != nil {
		wantErr(tb, "DeviceCount(DeviceCUDA)", err, electra.StatusCUDA)
		if n != 0 {
			tb.Fatalf("DeviceCount(DeviceCUDA) = %d with an error", n)
		}
		return 0, false
	}
	if n < 0 {
		tb.Fatalf("DeviceCount(DeviceCUDA) = %d", n)
	}
	return n, n > 0
}

func TestDeviceCount(t *testing.T) {
	if n, err := electra.DeviceCount(electra.DeviceCPU); err != nil || n != 1 {
		t.Fatalf("DeviceCount(DeviceCPU) = %d, %v; want 1", n, err)
	}
	// Either a number or ErrCUDA; without CUDA (the default build here) it is the error.
	n, err := electra.DeviceCount(electra.DeviceCUDA)
	if err != nil {
		wantErr(t, "DeviceCount(DeviceCUDA)", err, electra.StatusCUDA)
		if !errors.Is(err, electra.ErrCUDA) || n != 0 {
			t.Fatalf("DeviceCount(DeviceCUDA) = %d, %v", n, err)
		}
		t.Logf("no CUDA: %v", err)
	} else {
		t.Logf("%d CUDA device(s)", n)
	}
	_, err = electra.DeviceCount(electra.DeviceKind(7))
	wantErr(t, "DeviceCount(7)", err, electra.StatusInvalidArgument, "7")
	if electra.DeviceCPU.String() != "cpu" || electra.DeviceCUDA.String() != "cuda" || electra.DeviceKind(7).String() != "DeviceKind(7)" {
		t.Fatalf("DeviceKind names: %v %v %v", electra.DeviceCPU, electra.DeviceCUDA, electra.DeviceKind(7))
	}
}

// A session with explicit CPU options, in every accepted form, computes exactly what a default
// session computes.
func TestSessionWithOptionsMatchesDefault(t *testing.T) {
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			e := loadExpected(t, c)
			m := mustLoad(t, fixture(c, "discriminator"))
			want, err := mustSession(t, m).Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, c+" default session", want, e.floats(t, "disc_logits"))
			for name, opts := range map[string]interface{}{
				"map":    map[string]interface{}{"device": "cpu", "threads": 1},
				"struct": electra.SessionOptions{Device: "cpu", Threads: 1},
				"string": `{"device": "cpu", "threads": 1}`,
				"bytes":  []byte(`{"threads": 3}`),
				"zero":   electra.SessionOptions{},
				"nil":    nil,
			} {
				s, err := electra.NewSessionWithOptions(m, opts)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
				s.Close()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				assertSameBits(t, c+" "+name+" vs default session", got, want)
			}
		})
	}
}

func TestSessionDeviceErrors(t *testing.T) {
	e := loadExpected(t, "relu_act")
	m := mustLoad(t, fixture("relu_act"))
	n, haveCUDA := cudaCount(t)
	if !haveCUDA {
		// No CUDA in this library or no GPU on this machine (the default build here).
		for _, dev := range []string{"cuda", "cuda:0"} {
			_, err := electra.NewSessionWithOptions(m, electra.SessionOptions{Device: dev})
			wantErr(t, dev, err, electra.StatusCUDA)
		}
	} else {
		s, err := electra.NewSessionWithOptions(m, map[string]interface{}{"device": "cuda:0"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		assertClose(t, "cuda:0 disc_logits", got, e.floats(t, "disc_logits"))
		_, err = electra.NewSessionWithOptions(m, electra.SessionOptions{Device: fmt.Sprintf("cuda:%d", n)})
		wantErr(t, "a GPU past the last", err, electra.StatusCUDA)
	}
	_, err := electra.NewSessionWithOptions(m, map[string]interface{}{"device": "tpu"})
	wantErr(t, "device tpu", err, electra.StatusInvalidArgument, "tpu")
	_, err = electra.NewSessionWithOptions(m, `{"device": "cuda:x"}`)
	wantErr(t, "device cuda:x", err, electra.StatusInvalidArgument, "cuda:x")
	_, err = electra.NewSessionWithOptions(m, map[string]interface{}{"devic": "cpu"})
	wantErr(t, "unknown key", err, electra.StatusInvalidArgument, "devic")
	_, err = electra.NewSessionWithOptions(m, map[string]interface{}{"threads": -1})
	wantErr(t, "negative threads", err, electra.StatusInvalidArgument)
	_, err = electra.NewSessionWithOptions(m, `{"device": "cpu",`)
	wantErr(t, "malformed JSON", err, electra.StatusInvalidArgument)
	_, err = electra.NewSessionWithOptions(m, map[string]interface{}{"x": func() {}})
	wantErr(t, "unencodable options", err, electra.StatusInvalidArgument, "options")
	_, err = electra.NewSessionWithOptions(m, "{\"device\": \"cpu\x00\"}")
	wantErr(t, "NUL in options", err, electra.StatusInvalidArgument, "NUL")
	_, err = electra.NewSessionWithOptions(nil, nil)
	wantErr(t, "nil model", err, electra.StatusInvalidHandle)
	closed := mustLoad(t, fixture("relu_act"))
	closed.Close()
	_, err = electra.NewSessionWithOptions(closed, electra.SessionOptions{Device: "cpu"})
	wantErr(t, "closed model", err, electra.StatusInvalidHandle, "closed")
	// The refusals left the model usable.
	s, err := electra.NewSessionWithOptions(m, electra.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "after refusals", got, e.floats(t, "disc_logits"))
}

func TestTrainerAndFineTunerDevice(t *testing.T) {
	// An explicit CPU trains as the default does.
	a, b := newTinyTrainer(t, nil), newTinyTrainer(t, map[string]interface{}{"device": "cpu"})
	if sa, sb := step(t, a, 0), step(t, b, 0); sa != sb {
		t.Fatalf("device cpu differs from the default: %+v vs %+v", sb, sa)
	}
	_, err := electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"device": "tpu"}))
	wantErr(t, "trainer device tpu", err, electra.StatusInvalidArgument, "tpu")
	_, err = electra.NewFineTuner(fixture("relu_act", "discriminator"), 2, map[string]interface{}{"device": "tpu"})
	wantErr(t, "fine-tuner device tpu", err, electra.StatusInvalidArgument, "tpu")
	if _, haveCUDA := cudaCount(t); haveCUDA {
		t.Skip("CUDA is available: device errors are for libraries and machines without it")
	}
	// No CUDA in this library or no GPU on this machine (the default build here).
	_, err = electra.NewTrainer("tiny", tinyOptions(map[string]interface{}{"device": "cuda"}))
	wantErr(t, "trainer device cuda", err, electra.StatusCUDA)
	_, err = electra.NewFineTuner(fixture("relu_act", "discriminator"), 2, map[string]interface{}{"device": "cuda:0"})
	wantErr(t, "fine-tuner device cuda:0", err, electra.StatusCUDA)
}

// Save, step twice more; resume with other options and step the same two batches: the thread
// count does not change the numbers, so the run continues bit-identically.
func TestTrainerResumeWithOptions(t *testing.T) {
	tr := newTinyTrainer(t, nil) // threads 1
	step(t, tr, 0)
	step(t, tr, 1)
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := tr.Save(ckpt); err != nil {
		t.Fatal(err)
	}
	a2, a3 := step(t, tr, 2), step(t, tr, 3)

	for name, opts := range map[string]interface{}{
		"map":    map[string]interface{}{"threads": 2},
		"struct": electra.SessionOptions{Device: "cpu", Threads: 2},
		"string": `{"threads": 2}`,
		"nil":    nil,
	} {
		rt, err := electra.ResumeTrainerWithOptions(ckpt, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b2, b3 := step(t, rt, 2), step(t, rt, 3)
		rt.Close()
		if a2 != b2 || a3 != b3 || b3.Step != 4 {
			t.Fatalf("%s: resumed run differs:\n  %+v %+v\n  %+v %+v", name, a2, a3, b2, b3)
		}
	}

	_, err := electra.ResumeTrainerWithOptions(ckpt, map[string]interface{}{"device": "tpu"})
	wantErr(t, "resume on tpu", err, electra.StatusInvalidArgument, "tpu")
	_, err = electra.ResumeTrainerWithOptions(ckpt, map[string]interface{}{"learning_rate": 0.1})
	wantErr(t, "resume with a trainer-only key", err, electra.StatusInvalidArgument, "learning_rate")
	_, err = electra.ResumeTrainerWithOptions(filepath.Join(t.TempDir(), "nothing-here"), electra.SessionOptions{Threads: 2})
	wantErr(t, "resume from a missing dir", err, electra.StatusIO, "nothing-here")
	_, err = electra.ResumeTrainerWithOptions("a\x00b", nil)
	wantErr(t, "NUL in dir", err, electra.StatusInvalidArgument, "NUL")
	if _, haveCUDA := cudaCount(t); !haveCUDA {
		// No CUDA in this library or no GPU on this machine (the default build here).
		_, err = electra.ResumeTrainerWithOptions(ckpt, electra.SessionOptions{Device: "cuda"})
		wantErr(t, "resume on cuda", err, electra.StatusCUDA)
	}
	if _, err := os.Stat(filepath.Join(ckpt, "trainer.safetensors")); err != nil {
		t.Fatal(err)
	}
}

// A memory budget below what a call needs is ErrOutOfMemory before anything is allocated, and a
// generous one changes nothing.
func TestSessionMemoryBudget(t *testing.T) {
	e := loadExpected(t, "relu_act")
	m := mustLoad(t, fixture("relu_act"))
	tight, err := electra.NewSessionWithOptions(m, electra.SessionOptions{MaxMemoryBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer tight.Close()
	_, err = tight.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	wantErr(t, "1 KiB budget", err, electra.StatusOutOfMemory, "max_memory_bytes")
	roomy, err := electra.NewSessionWithOptions(m, electra.SessionOptions{MaxMemoryBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer roomy.Close()
	got, err := roomy.Discriminate(e.ids, e.mask, e.types, e.batch, e.seqLen)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, "1 GiB budget disc_logits", got, e.floats(t, "disc_logits"))
}
