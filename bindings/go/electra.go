package electra

import (
	"math"
	"sync"
)

// Version is the library version, e.g. "0.1.0".
func Version() string { return nativeVersion() }

// ABIVersion is the C ABI version of the library loaded at run time.
func ABIVersion() uint32 { return nativeABIVersion() }

var (
	abiOnce sync.Once
	abiErr  error
)

// CheckABI returns an error when the loaded library's ABI differs from the header this
// package was compiled against. LoadModel, NewTrainer, ResumeTrainer(WithOptions) and
// NewFineTuner call it and refuse to run on a mismatch.
func CheckABI() error {
	abiOnce.Do(func() {
		if lib := ABIVersion(); lib != HeaderABIVersion {
			abiErr = newError(StatusUnsupported,
				"ABI mismatch: compiled against electra.h ABI %d, loaded libelectra has ABI %d", HeaderABIVersion, lib)
		}
	})
	return abiErr
}

// checkInputs validates a batch of token arrays and returns batch*seqLen. mask and types may
// be nil (all ones, all zeros); otherwise every slice must hold exactly batch*seqLen values.
func checkInputs(ids, mask, types []int32, batch, seqLen int) (int, error) {
	if batch <= 0 || seqLen <= 0 {
		return 0, newError(StatusInvalidArgument, "invalid argument: batch (%d) and seqLen (%d) must be positive", batch, seqLen)
	}
	if batch > math.MaxInt32/seqLen {
		return 0, newError(StatusInvalidArgument, "invalid argument: batch %d x seqLen %d is too large", batch, seqLen)
	}
	n := batch * seqLen
	for _, a := range []struct {
		name string
		s    []int32
		opt  bool
	}{{"ids", ids, false}, {"mask", mask, true}, {"types", types, true}} {
		if a.opt && a.s == nil {
			continue
		}
		if len(a.s) != n {
			return 0, newError(StatusShape, "shape mismatch: len(%s) = %d, want batch*seqLen = %d*%d = %d",
				a.name, len(a.s), batch, seqLen, n)
		}
	}
	return n, nil
}
