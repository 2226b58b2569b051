//! Splitting work over the pool of the call this code runs in (see `pool.rs`: kernels run
//! inside `Pool::run`). Splits never change what is computed for one row or one column, and every
//! reduction that crosses rows runs in a fixed order, so results do not depend on the pool.
//!
//! Every parallel loop of the CPU kernels goes through the helpers here, never through rayon
//! directly: they run the parts in order on the calling thread when the call is inline (so
//! rayon's global pool is never touched), and they carry the call's context ([`Ctx`]: kernel
//! variant, C ABI state) into each task on whichever worker runs it.

use super::pool::Ctx;
use rayon::prelude::*;
use std::marker::PhantomData;

/// Worker threads the current call splits its work over: its pool's (1 inline). Outside any
/// call of ours, the rayon pool this thread is a worker of (benchmarks and tests that install a
/// bare pool), else 1: never rayon's global pool.
pub fn threads() -> usize {
    match Ctx::current() {
        Some(c) if rayon::current_thread_index().is_some() => c.threads,
        Some(_) => 1,
        None if rayon::current_thread_index().is_some() => rayon::current_num_threads(),
        None => 1,
    }
}

/// Wraps a task body so that it runs with the context captured now.
fn carried<A, R, F: Fn(A) -> R + Sync>(f: &F) -> impl Fn(A) -> R + Sync + Send + '_ {
    let ctx = Ctx::current();
    move |a| match ctx {
        Some(c) => c.enter(|| f(a)),
        None => f(a),
    }
}

/// Runs `f(i)` for every `i` in `0..count`, in parallel on the call's pool (in order inline).
pub fn for_each(count: usize, f: impl Fn(usize) + Sync) {
    if count <= 1 || threads() <= 1 {
        (0..count).for_each(f);
        return;
    }
    (0..count).into_par_iter().for_each(carried(&f));
}

/// Runs `f(i, chunk)` over the `size`-element chunks of `data` (the last may be shorter), in
/// parallel on the call's pool (in order inline).
pub fn chunks_mut<T: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let size = size.max(1);
    if data.len() <= size || threads() <= 1 {
        data.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let f = |(i, c): (usize, &mut [T])| f(i, c);
    data.par_chunks_mut(size).enumerate().for_each(carried(&f));
}

/// Runs `f(i, a, b, c)` over chunk `i` (`size` elements, the last may be shorter) of three
/// slices of one length side by side, in parallel on the call's pool (in order inline).
pub fn chunks3_mut<T: Send>(
    a: &mut [T],
    b: &mut [T],
    c: &mut [T],
    size: usize,
    f: impl Fn(usize, &mut [T], &mut [T], &mut [T]) + Sync,
) {
    let size = size.max(1);
    let chunks = || a.len().div_ceil(size);
    debug_assert!(a.len() == b.len() && a.len() == c.len());
    if chunks() <= 1 || threads() <= 1 {
        for (i, ((x, y), z)) in a.chunks_mut(size).zip(b.chunks_mut(size)).zip(c.chunks_mut(size)).enumerate() {
            f(i, x, y, z);
        }
        return;
    }
    type Parts<'s, T> = (usize, ((&'s mut [T], &'s mut [T]), &'s mut [T]));
    let g = |(i, ((x, y), z)): Parts<'_, T>| f(i, x, y, z);
    a.par_chunks_mut(size).zip(b.par_chunks_mut(size)).zip(c.par_chunks_mut(size)).enumerate().for_each(carried(&g));
}

/// `f(i, chunk)` of every `size`-element chunk of `data`, in chunk order, computed in parallel
/// on the call's pool (in order inline).
pub fn map_chunks<T: Send, R: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) -> R + Sync) -> Vec<R> {
    let size = size.max(1);
    if data.len() <= size || threads() <= 1 {
        return data.chunks_mut(size).enumerate().map(|(i, c)| f(i, c)).collect();
    }
    let f = |(i, c): (usize, &mut [T])| f(i, c);
    data.par_chunks_mut(size).enumerate().map(carried(&f)).collect()
}

/// Runs `f(start, end)` over contiguous ranges covering `0..n`: about `parts` of them, each at
/// least `min` long and (except the last) a multiple of `align`. One range runs inline.
pub fn for_ranges(n: usize, parts: usize, min: usize, align: usize, f: impl Fn(usize, usize) + Sync) {
    let ranges = split(n, parts, min, align);
    if ranges.1 <= 1 {
        if n > 0 {
            f(0, n);
        }
        return;
    }
    let (size, count) = ranges;
    for_each(count, |i| {
        let start = i * size;
        let end = if i + 1 == count { n } else { start + size };
        f(start, end)
    });
}

/// (range size, number of ranges) for [`for_ranges`]; the last range absorbs the remainder, so
/// every range is at least `size` long.
pub fn split(n: usize, parts: usize, min: usize, align: usize) -> (usize, usize) {
    let align = align.max(1);
    let size = n.div_ceil(parts.max(1)).max(min).max(1).next_multiple_of(align);
    (size, (n / size).max(1))
}

/// Runs `f(row_start, rows)` over row blocks of a row-major `[n, width]` buffer in parallel,
/// blocks of at least `min_rows` rows, about four per thread for load balance.
pub fn rows_mut(data: &mut [f32], width: usize, min_rows: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if width == 0 {
        return;
    }
    let n = data.len() / width;
    let (size, count) = split(n, 4 * threads(), min_rows, 1);
    if count <= 1 {
        f(0, &mut data[..n * width]);
        return;
    }
    chunks_mut(&mut data[..n * width], size * width, |i, block| f(i * size, block));
}

/// A row-major `[rows, width]` buffer whose disjoint row ranges are handed to parallel tasks.
pub struct RowsMut<'a> {
    ptr: *mut f32,
    rows: usize,
    width: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: RowsMut holds a unique borrow of `f32`s (which are Send + Sync) for 'a, and hands out
// parts of it only through the unsafe `get`/`span`, whose contract keeps ranges used at the same
// time, from any thread, disjoint.
unsafe impl Send for RowsMut<'_> {}
// SAFETY: `&RowsMut` exposes the buffer only through those same `get`/`span`, so sharing it
// across threads creates no overlapping `&mut` either.
unsafe impl Sync for RowsMut<'_> {}

impl<'a> RowsMut<'a> {
    /// Wraps the first `rows·width` elements of `data`.
    pub fn new(data: &'a mut [f32], rows: usize, width: usize) -> Self {
        assert!(data.len() >= rows * width, "buffer shorter than {rows} x {width}");
        RowsMut { ptr: data.as_mut_ptr(), rows, width, _borrow: PhantomData }
    }

    /// Rows `r0..r1`.
    ///
    /// # Safety
    /// Ranges obtained at the same time (from any thread) must not overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self, r0: usize, r1: usize) -> &'a mut [f32] {
        assert!(r0 <= r1 && r1 <= self.rows, "rows {r0}..{r1} out of 0..{}", self.rows);
        // SAFETY: rows r0..r1 lie within the `rows·width` elements borrowed mutably for 'a in
        // `new` (asserted above), and the contract keeps concurrently live ranges disjoint.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r0 * self.width), (r1 - r0) * self.width) }
    }

    /// Elements `start..end` of the flat buffer.
    ///
    /// # Safety
    /// Spans and row ranges obtained at the same time must not overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn span(&self, start: usize, end: usize) -> &'a mut [f32] {
        assert!(start <= end && end <= self.rows * self.width, "span {start}..{end} out of bounds");
        // SAFETY: start..end lies within the `rows·width` elements borrowed mutably for 'a in
        // `new` (asserted above), and the contract keeps concurrently live spans disjoint.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }

    /// The raw base pointer (for strided kernels that write disjoint sub-blocks).
    pub fn ptr(&self) -> *mut f32 {
        self.ptr
    }
}
