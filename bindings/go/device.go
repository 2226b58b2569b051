package electra

// #include "electra.h"
import "C"

import "fmt"

// DeviceKind is a kind of compute device (electra_device_kind).
type DeviceKind int32

// The device kinds of electra.h.
const (
	DeviceCPU  DeviceKind = C.ELECTRA_DEVICE_CPU  // the host CPU, always present
	DeviceCUDA DeviceKind = C.ELECTRA_DEVICE_CUDA // NVIDIA GPUs (a library built with the cuda feature, and a driver)
)

// String is the kind's name in the "device" option: "cpu" or "cuda".
func (k DeviceKind) String() string {
	switch k {
	case DeviceCPU:
		return "cpu"
	case DeviceCUDA:
		return "cuda"
	}
	return fmt.Sprintf("DeviceKind(%d)", int32(k))
}

// DeviceCount says how many devices of kind the library can use: 1 for DeviceCPU, the
// driver's device count for DeviceCUDA. A library built without CUDA, or a machine whose CUDA
// driver cannot be loaded, gives 0 and ErrCUDA with a message saying which; an unknown kind
// gives ErrInvalidArgument.
func DeviceCount(kind DeviceKind) (int, error) {
	return nativeDeviceCount(kind)
}

// SessionOptions is a typed options value for NewSessionWithOptions and
// ResumeTrainerWithOptions (a map or JSON text with the same keys works as well). Zero fields
// are left out: the session's defaults (the CPU, one thread per core), or for a resumed
// trainer the checkpoint's values.
type SessionOptions struct {
	// Device is "cpu", "cuda" (the first GPU) or "cuda:N". A device not compiled in or not
	// present is ErrCUDA.
	Device string `json:"device,omitempty"`
	// Threads is the number of host worker threads: 0 the process-wide shared pool (see
	// SetDefaultThreads; one per core unless set), 1 the calling thread only (no worker
	// thread), N >= 2 N workers (the shared pool when that is its size, else a pool of the
	// session's own). Results do not depend on it.
	Threads int `json:"threads,omitempty"`
	// OwnPool gives the session a pool of its own of Threads workers (0: one per core) instead
	// of the shared one.
	OwnPool bool `json:"own_pool,omitempty"`
	// MaxMemoryBytes is a memory budget for each call (0: none beyond the machine's memory). A
	// call whose estimate exceeds it is ErrOutOfMemory before anything is allocated.
	MaxMemoryBytes uint64 `json:"max_memory_bytes,omitempty"`
}
