//! Size arithmetic and fallible allocation for everything whose size comes from outside (a file,
//! an option, an argument): sizes are multiplied with overflow checks and buffers are reserved
//! with `try_reserve`, so a hostile or mistaken size is an [`Error`] instead of an abort of the
//! host's process ("memory allocation of N bytes failed") or a "capacity overflow" panic.

use crate::error::{Error, Result};

/// The product of `dims`, or [`Error::OutOfMemory`] naming `what` when it overflows `usize`.
pub fn count(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::OutOfMemory(format!("{what}: {dims:?} elements overflow the address space")))
}

/// Bytes of `n` values of `T`, checked.
pub fn bytes<T>(n: usize, what: &str) -> Result<usize> {
    n.checked_mul(std::mem::size_of::<T>())
        .ok_or_else(|| Error::OutOfMemory(format!("{what}: {n} elements overflow the address space")))
}

/// A vector of `n` copies of `fill`, reserved fallibly: [`Error::OutOfMemory`] with the size
/// asked for when the allocator refuses.
pub fn try_vec<T: Clone>(n: usize, fill: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_resize(&mut v, n, fill, what)?;
    Ok(v)
}

/// `n` zeros, allocated zeroed (`calloc`): a large buffer comes straight from the kernel's zero
/// pages, which become resident only where written. [`Error::OutOfMemory`] when refused.
pub fn try_zeroed_f32(n: usize, what: &str) -> Result<Vec<f32>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f32>(n).map_err(|_| oom::<f32>(n, what))?;
    // SAFETY: the layout has a non-zero size (n > 0 f32s).
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<f32>();
    if p.is_null() {
        return Err(oom::<f32>(n, what));
    }
    // SAFETY: `p` comes from the global allocator with the layout of `[f32; n]` (what a
    // `Vec<f32>` of capacity n frees with), and its n elements are initialised: all-zero bits
    // are the f32 0.0.
    Ok(unsafe { Vec::from_raw_parts(p, n, n) })
}

/// Grows (or shrinks) `v` to `n` elements, reserving fallibly; `v` is unchanged on error.
pub fn try_resize<T: Clone>(v: &mut Vec<T>, n: usize, fill: T, what: &str) -> Result<()> {
    if n > v.len() {
        let more = n - v.len();
        v.try_reserve_exact(more).map_err(|_| oom::<T>(n, what))?;
    }
    v.resize(n, fill);
    Ok(())
}

/// [`Error::OutOfMemory`] for `n` values of `T`.
pub fn oom<T>(n: usize, what: &str) -> Error {
    match n.checked_mul(std::mem::size_of::<T>()) {
        Some(b) => Error::OutOfMemory(format!("{what}: could not allocate {b} bytes ({n} values)")),
        None => Error::OutOfMemory(format!("{what}: {n} values overflow the address space")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_and_refusal_are_errors() {
        assert!(matches!(count(&[1 << 40, 1 << 40], "x"), Err(Error::OutOfMemory(_))));
        assert_eq!(count(&[3, 4], "x").unwrap(), 12);
        assert!(matches!(bytes::<f32>(usize::MAX / 2, "x"), Err(Error::OutOfMemory(_))));
        // More than any machine has: the allocator refuses and we get an error, not an abort.
        assert!(matches!(try_vec(usize::MAX / 8, 0f32, "x"), Err(Error::OutOfMemory(_))));
        let mut v = vec![1u8; 3];
        assert!(try_resize(&mut v, usize::MAX, 0, "x").is_err());
        assert_eq!(v, [1, 1, 1]);
    }
}
