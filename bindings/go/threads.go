package electra

// SetDefaultThreads sets the size of the process-wide CPU thread pool that sessions, trainers
// and fine-tuners share by default (electra_set_default_threads): n worker threads, 0 = one per
// core (the default). Call it before the first handle with Threads 0 is created; until then a
// later call replaces the size. From then on the same size succeeds and any other is
// ErrInvalidArgument (the pool never resizes under handles using it). With size 1 those
// handles run on the calling thread, with no worker thread. A negative n or one above 1024 is
// ErrInvalidArgument.
func SetDefaultThreads(n int) error {
	if n < 0 {
		return newError(StatusInvalidArgument, "invalid argument: threads (%d) is negative", n)
	}
	return nativeSetDefaultThreads(n)
}

// DefaultThreads is the size of the shared CPU thread pool: the threads it runs, or will start
// with (electra_default_threads).
func DefaultThreads() (int, error) {
	return nativeDefaultThreads()
}
