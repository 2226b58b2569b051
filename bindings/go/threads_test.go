package electra_test

import (
	"errors"
	"testing"

	electra "github.com/electra-project/electra/bindings/go"
)

// The shared pool's size is set once: the size in use is always accepted, another one is
// refused once a session used the pool (other tests of this process may have started it).
func TestDefaultThreads(t *testing.T) {
	n, err := electra.DefaultThreads()
	if err != nil || n < 1 {
		t.Fatalf("DefaultThreads() = %d, %v", n, err)
	}
	if err := electra.SetDefaultThreads(n); err != nil {
		t.Fatalf("SetDefaultThreads(%d), the size in use: %v", n, err)
	}
	for _, bad := range []int{-1, 1025} {
		if err := electra.SetDefaultThreads(bad); !errors.Is(err, electra.ErrInvalidArgument) {
			t.Fatalf("SetDefaultThreads(%d) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	m := mustLoad(t, fixture("emb_lt_hidden", "discriminator"))
	defer m.Close()
	s := mustSession(t, m)
	defer s.Close()
	if _, err := s.Discriminate([]int32{2, 5, 6, 3}, nil, nil, 1, 4); err != nil {
		t.Fatal(err)
	}
	err = electra.SetDefaultThreads(n + 1)
	if !errors.Is(err, electra.ErrInvalidArgument) {
		t.Fatalf("SetDefaultThreads(%d) with the pool in use = %v, want ErrInvalidArgument", n+1, err)
	}
	if got, _ := electra.DefaultThreads(); got != n {
		t.Fatalf("DefaultThreads() = %d after a refused resize, want %d", got, n)
	}
	// A session on the calling thread only, and one with a pool of its own.
	for _, o := range []electra.SessionOptions{{Threads: 1}, {Threads: 2, OwnPool: true}} {
		s, err := electra.NewSessionWithOptions(m, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if _, err := s.Discriminate([]int32{2, 5, 6, 3}, nil, nil, 1, 4); err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		s.Close()
	}
}
