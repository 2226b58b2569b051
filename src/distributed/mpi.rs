//! The MPI engine (feature `mpi`): ranks of `mpirun`, over the system's MPI through the `mpi`
//! crate's bindings.
//!
//! - MPI is initialised here (`MPI_THREAD_SERIALIZED`: a host may step its trainer from
//!   different threads, one at a time) unless the host already did; when we initialised it,
//!   `MPI_Finalize` runs at process exit.
//! - Our collectives run on a duplicate of `MPI_COMM_WORLD` with `MPI_ERRORS_RETURN`, so they
//!   never mix with the host's messages and an MPI error is an [`Error::Distributed`], not an
//!   abort of the host's process.
//! - Each all-reduce is non-blocking (`MPI_Iallreduce`) and polled against a deadline
//!   ([`crate::pretrain::TrainOptions::collective_timeout_s`]): a rank that hangs fails the
//!   others in bounded time. (A rank that dies is `mpirun`'s to report: it ends the job.) The
//!   reduction runs through buffers the engine owns, in chunks, so a timed-out request that MPI
//!   may still complete later never writes into the caller's memory; after a timeout the engine
//!   refuses further calls, and the process exits without `MPI_Finalize` (which would wait for
//!   the rank that hung), so `mpirun` ends the job.

use super::Collective;
use crate::error::{Error, Result};
use mpi::ffi;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Elements per chunk of an all-reduce: 16 MiB through each of the two staging buffers.
const CHUNK: usize = 1 << 22;

/// The process's MPI world, set up once.
struct World {
    comm: ffi::MPI_Comm,
    rank: usize,
    size: usize,
}

// SAFETY: an MPI_Comm is a handle (a pointer in OpenMPI) to library state that MPI itself guards;
// we call MPI from one thread at a time (the engine's mutex), as MPI_THREAD_SERIALIZED requires.
unsafe impl Send for World {}
// SAFETY: as above; the handle is only read.
unsafe impl Sync for World {}

static WORLD: OnceLock<std::result::Result<World, String>> = OnceLock::new();

/// A collective of ours timed out or failed: finalizing would wait for ranks that are gone.
static ABANDONED: AtomicBool = AtomicBool::new(false);

fn mpi_error(what: &str, code: c_int) -> Error {
    let mut buf = [0 as c_char; 512];
    let mut len: c_int = 0;
    // SAFETY: `buf` holds MPI_MAX_ERROR_STRING (256 in OpenMPI, 512 in MPICH) characters.
    let text = if unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr(), &mut len) } == 0 {
        let bytes: Vec<u8> = buf[..len.clamp(0, 512) as usize].iter().map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        format!("error code {code}")
    };
    Error::Distributed(format!("MPI: {what}: {text}"))
}

extern "C" fn finalize_at_exit() {
    // MPI_Finalize synchronises with the other ranks; after a timed-out collective it would
    // wait for the rank that hung. Exiting without it lets mpirun see the failure and end the job.
    if ABANDONED.load(Ordering::SeqCst) {
        return;
    }
    let (mut init, mut fin): (c_int, c_int) = (0, 0);
    // SAFETY: MPI_Initialized and MPI_Finalized may be called at any time, from any thread.
    unsafe {
        ffi::MPI_Initialized(&mut init);
        ffi::MPI_Finalized(&mut fin);
        if init != 0 && fin == 0 {
            ffi::MPI_Finalize();
        }
    }
}

fn world() -> Result<&'static World> {
    let w = WORLD.get_or_init(|| {
        let (mut init, mut fin): (c_int, c_int) = (0, 0);
        // SAFETY: these two may be called before MPI_Init and after MPI_Finalize.
        unsafe {
            ffi::MPI_Initialized(&mut init);
            ffi::MPI_Finalized(&mut fin);
        }
        if fin != 0 {
            return Err("MPI was already finalized in this process".into());
        }
        if init == 0 {
            let mut provided: c_int = 0;
            // SAFETY: MPI is not initialised (checked above); NULL argc/argv are allowed.
            let rc = unsafe {
                ffi::MPI_Init_thread(
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    ffi::RSMPI_THREAD_SERIALIZED,
                    &mut provided,
                )
            };
            if rc != 0 {
                return Err(format!("MPI_Init_thread failed with code {rc}"));
            }
            // SAFETY: registers a plain extern "C" function; it finalizes only if still needed.
            unsafe { libc::atexit(finalize_at_exit) };
            // SAFETY: a constant of the MPI library, initialised at load time.
            if provided < unsafe { ffi::RSMPI_THREAD_SERIALIZED } {
                return Err(format!("this MPI provides thread level {provided}, below MPI_THREAD_SERIALIZED"));
            }
        }
        // SAFETY: MPI is initialised; `comm` receives a new communicator; the handles read are
        // the library's constants.
        unsafe {
            let mut comm: ffi::MPI_Comm = ffi::RSMPI_COMM_NULL;
            let rc = ffi::MPI_Comm_dup(ffi::RSMPI_COMM_WORLD, &mut comm);
            if rc != 0 {
                return Err(format!("MPI_Comm_dup failed with code {rc}"));
            }
            ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_RETURN);
            let (mut rank, mut size): (c_int, c_int) = (0, 0);
            ffi::MPI_Comm_rank(comm, &mut rank);
            ffi::MPI_Comm_size(comm, &mut size);
            Ok(World { comm, rank: rank.max(0) as usize, size: size.max(1) as usize })
        }
    });
    w.as_ref().map_err(|e| Error::Distributed(format!("MPI: {e}")))
}

struct Staging {
    send: Vec<f32>,
    recv: Vec<f32>,
    /// A timed-out request may still use the buffers: nothing runs after one.
    broken: bool,
}

/// `MPI_COMM_WORLD` (a duplicate of it) as a [`Collective`].
pub struct Mpi {
    world: &'static World,
    timeout: Duration,
    staging: Mutex<Staging>,
}

impl Mpi {
    /// The world of this process (initialising MPI if the host has not), with collectives that
    /// fail after `timeout_s` seconds of waiting. Every rank must call it (the first call
    /// duplicates the world communicator, a collective operation).
    pub fn world(timeout_s: f64) -> Result<Arc<Mpi>> {
        if !(timeout_s.is_finite() && timeout_s > 0.0) {
            return Err(Error::arg(format!("collective timeout {timeout_s} s is out of range")));
        }
        Ok(Arc::new(Mpi {
            world: world()?,
            timeout: Duration::from_secs_f64(timeout_s.min(1e9)),
            staging: Mutex::new(Staging { send: Vec::new(), recv: Vec::new(), broken: false }),
        }))
    }

    fn reduce_chunk(&self, st: &mut Staging, data: &mut [f32], deadline: Instant) -> Result<()> {
        let n = data.len();
        st.send[..n].copy_from_slice(data);
        let mut req: ffi::MPI_Request = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: both buffers hold at least `n` (≤ CHUNK < i32::MAX) floats and stay alive and
        // untouched until the request completes, or forever after a timeout (`broken`); the
        // datatype, op and communicator are valid handles.
        let rc = unsafe {
            ffi::MPI_Iallreduce(
                st.send.as_ptr().cast(),
                st.recv.as_mut_ptr().cast(),
                n as c_int,
                ffi::RSMPI_FLOAT,
                ffi::RSMPI_SUM,
                self.world.comm,
                &mut req,
            )
        };
        if rc != 0 {
            return Err(mpi_error("MPI_Iallreduce", rc));
        }
        let mut spins = 0u32;
        loop {
            let mut done: c_int = 0;
            // SAFETY: `req` is the live request started above.
            let rc = unsafe { ffi::MPI_Test(&mut req, &mut done, ffi::RSMPI_STATUS_IGNORE) };
            if rc != 0 {
                st.broken = true;
                return Err(mpi_error("MPI_Test", rc));
            }
            if done != 0 {
                break;
            }
            if Instant::now() >= deadline {
                st.broken = true;
                return Err(Error::Distributed(format!(
                    "an all-reduce waited {:.0} s for the other ranks (collective_timeout_s): a rank is stuck \
                     or gone; nothing was updated on this rank",
                    self.timeout.as_secs_f64()
                )));
            }
            // Poll hot for the first few thousand rounds (shared-memory latency), then back off.
            spins = spins.saturating_add(1);
            if spins > 2000 {
                std::thread::sleep(Duration::from_micros(if spins > 20_000 { 1000 } else { 50 }));
            } else {
                std::hint::spin_loop();
            }
        }
        data.copy_from_slice(&st.recv[..n]);
        Ok(())
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank
    }

    fn world_size(&self) -> usize {
        self.world.size
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        let mut st = self.staging.lock().map_err(|_| Error::Distributed("MPI staging lock poisoned".into()))?;
        if st.broken {
            return Err(Error::Distributed(
                "an earlier MPI collective failed or timed out; this run cannot go on (resume from its last \
                 checkpoint)"
                    .into(),
            ));
        }
        let need = data.len().min(CHUNK);
        if st.send.len() < need {
            let Staging { send, recv, .. } = &mut *st;
            crate::alloc::try_resize(send, need, 0.0, "MPI staging buffer")?;
            crate::alloc::try_resize(recv, need, 0.0, "MPI staging buffer")?;
        }
        let deadline = Instant::now() + self.timeout;
        for chunk in data.chunks_mut(CHUNK) {
            let r = self.reduce_chunk(&mut st, chunk, deadline);
            if r.is_err() && st.broken {
                ABANDONED.store(true, Ordering::SeqCst);
                // MPI may still read and write the staging buffers: leak them.
                std::mem::forget(std::mem::take(&mut st.send));
                std::mem::forget(std::mem::take(&mut st.recv));
            }
            r?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("mpi: rank {} of {}", self.world.rank, self.world.size)
    }
}
