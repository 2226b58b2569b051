package electra

// A file with //export may only declare in its preamble: the C shim that passes the
// trampoline to the library lives in native.go.

// #include "electra.h"
import "C"

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// AllReduce is a host's sum all-reduce for data-parallel training (see Trainer.SetAllReduce):
// it replaces data, on every rank, by the element-wise sum of every rank's data and returns
// nil. Every rank must get the same bits back, so sum in a fixed order (rank 0's buffer first).
// data is library memory valid only during the call: do not keep it, nor a slice of it.
type AllReduce func(data []float32) error

// allReduceState is what a Trainer's cgo.Handle refers to: the host's func and the cause of
// its last failure, reported with the library's error.
type allReduceState struct {
	f     AllReduce
	cause error
}

// takeCause returns and clears the cause of the last failed call.
func (s *allReduceState) takeCause() error {
	c := s.cause
	s.cause = nil
	return c
}

// Nonzero results of the trampoline; the library fails the step with ELECTRA_ERR_DISTRIBUTED.
const (
	allReduceFailed   = 1 // the func returned an error
	allReducePanicked = 2 // the func panicked (recovered: a Go panic must not unwind C frames)
)

//export electraGoAllReduce
func electraGoAllReduce(data *C.float, count C.size_t, userData unsafe.Pointer) (rc C.int32_t) {
	var s *allReduceState
	defer func() {
		if r := recover(); r != nil {
			if s != nil {
				s.cause = fmt.Errorf("all-reduce func panicked: %v", r)
			}
			rc = allReducePanicked
		}
	}()
	// The library calls back on the thread (so the goroutine) that called into it, with the
	// user_data the Trainer registered: the Trainer's op mutex is held, no other goroutine
	// touches s meanwhile.
	s = cgo.Handle(uintptr(userData)).Value().(*allReduceState)
	var buf []float32
	if count > 0 {
		buf = unsafe.Slice((*float32)(unsafe.Pointer(data)), int(count))
	}
	if err := s.f(buf); err != nil {
		s.cause = fmt.Errorf("all-reduce func: %w", err)
		return allReduceFailed
	}
	return 0
}
