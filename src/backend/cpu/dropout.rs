//! Inverted dropout over a buffer, in parallel chunks: each chunk reads its own words of the
//! mask's keystream (see [`Dropout`]), so the split, and with it the thread count, changes
//! nothing.

use crate::backend::Dropout;

/// Elements per task: large enough that a task's ChaCha8 set-up (one block) is noise.
const CHUNK: usize = 1 << 14;

/// `x[i] = keep(i) ? x[i]/(1 − p) : 0` with element 0 at the mask's position.
pub fn dropout(x: &mut [f32], mask: Dropout) {
    super::par::chunks_mut(x, CHUNK, |c, xs| mask.offset((c * CHUNK) as u64).apply(xs));
}
