package electra

// #include "electra.h"
import "C"

import "fmt"

// Status is a libelectra status code (electra_status). Codes are stable: never renumbered.
type Status int32

// The status codes of electra.h.
const (
	StatusOK              Status = C.ELECTRA_OK
	StatusInvalidArgument Status = C.ELECTRA_ERR_INVALID_ARGUMENT
	StatusNullPointer     Status = C.ELECTRA_ERR_NULL_POINTER
	StatusInvalidHandle   Status = C.ELECTRA_ERR_INVALID_HANDLE
	StatusIO              Status = C.ELECTRA_ERR_IO
	StatusFormat          Status = C.ELECTRA_ERR_FORMAT
	StatusShape           Status = C.ELECTRA_ERR_SHAPE
	StatusBufferTooSmall  Status = C.ELECTRA_ERR_BUFFER_TOO_SMALL
	StatusOutOfMemory     Status = C.ELECTRA_ERR_OUT_OF_MEMORY
	StatusCancelled       Status = C.ELECTRA_ERR_CANCELLED
	StatusUnsupported     Status = C.ELECTRA_ERR_UNSUPPORTED
	StatusNumeric         Status = C.ELECTRA_ERR_NUMERIC
	StatusCUDA            Status = C.ELECTRA_ERR_CUDA
	StatusInternal        Status = C.ELECTRA_ERR_INTERNAL
	StatusPanic           Status = C.ELECTRA_ERR_PANIC
	StatusDistributed     Status = C.ELECTRA_ERR_DISTRIBUTED
)

// String is the library's name for the code ("invalid argument", "cancelled", ...).
func (s Status) String() string { return nativeStatusStr(s) }

// Error is a failure reported by libelectra, or detected by this binding before calling it
// (closed handle, slice lengths that do not match batch*seqLen, ...), with the matching code.
type Error struct {
	Code    Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "electra: " + e.Code.String()
	}
	return "electra: " + e.Message
}

// Is makes errors.Is(err, ErrCancelled) (and the other Err* values) match any *Error with
// the same code. A target with a message matches only an identical error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Sentinels for errors.Is: each matches every *Error with its code.
var (
	ErrInvalidArgument = &Error{Code: StatusInvalidArgument}
	ErrNullPointer     = &Error{Code: StatusNullPointer}
	ErrInvalidHandle   = &Error{Code: StatusInvalidHandle}
	ErrIO              = &Error{Code: StatusIO}
	ErrFormat          = &Error{Code: StatusFormat}
	ErrShape           = &Error{Code: StatusShape}
	ErrBufferTooSmall  = &Error{Code: StatusBufferTooSmall}
	ErrOutOfMemory     = &Error{Code: StatusOutOfMemory}
	ErrCancelled       = &Error{Code: StatusCancelled}
	ErrUnsupported     = &Error{Code: StatusUnsupported}
	ErrNumeric         = &Error{Code: StatusNumeric}
	ErrCUDA            = &Error{Code: StatusCUDA}
	ErrInternal        = &Error{Code: StatusInternal}
	ErrPanic           = &Error{Code: StatusPanic}
	ErrDistributed     = &Error{Code: StatusDistributed}
)

func newError(code Status, format string, args ...interface{}) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func closedError(what string) *Error {
	return newError(StatusInvalidHandle, "invalid handle: the %s is closed", what)
}
