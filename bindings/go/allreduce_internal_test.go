package electra

import (
	"errors"
	"runtime/cgo"
	"testing"
)

// live reports whether h still refers to a value (Value panics on a deleted handle).
func live(h cgo.Handle) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return h.Value() != nil
}

// The handle given to the library as user_data lives exactly as long as the library may call
// it: replacing the func releases the old one, a refused func is never kept, Close releases
// the current one.
func TestAllReduceHandleLifetime(t *testing.T) {
	opts := map[string]interface{}{"vocab_size": 200, "max_seq_len": 32, "mask_token_id": 4,
		"special_token_ids": []int{0, 1, 2, 3, 4}, "threads": 1}
	// One rank of one: the library takes the func without calling it.
	tr, err := NewTrainer("tiny", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sum := func([]float32) error { return nil }
	if err := tr.SetAllReduce(sum); err != nil {
		t.Fatal(err)
	}
	first := tr.reduceHandle
	if !live(first) {
		t.Fatal("the handle of the func set is not live")
	}
	if err := tr.SetAllReduce(sum); err != nil {
		t.Fatal(err)
	}
	second := tr.reduceHandle
	if live(first) || !live(second) {
		t.Fatalf("after a replacement: first live %v, second live %v", live(first), live(second))
	}
	tr.Close()
	if live(second) || tr.reduce != nil {
		t.Fatal("Close kept the all-reduce handle")
	}

	opts["world_size"] = 2
	tr2, err := NewTrainer("tiny", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	if err := tr2.SetAllReduce(func([]float32) error { return errors.New("down") }); err == nil {
		t.Fatal("a failing all-reduce was accepted")
	}
	if tr2.reduce != nil {
		t.Fatal("a refused all-reduce was kept")
	}
}
