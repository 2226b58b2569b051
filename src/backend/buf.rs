//! Device memory as the seam sees it: [`Buf`], an owned buffer on one backend's device, and
//! [`Mem`], read-only memory a kernel may read without owning it (a model's host weights shared
//! by many sessions, or a view of a `Buf`).
//!
//! Only host memory exists today. A device backend adds its variant to `Store` and `Mem`; every
//! place that must handle it (the CPU backend's accessors, the downloads) then fails to compile
//! until it does, which is the point.

/// An owned buffer of `T` (f32 activations, gradients, weights; i32 ids) on one device. An empty
/// buffer (the default) belongs to no device yet: [`crate::backend::Backend::ensure`] gives it
/// memory on the backend that first sizes it. Buffers only grow, so a handle that has run once
/// allocates nothing more for calls of the same or smaller shape.
#[derive(Clone, Debug, Default)]
pub struct Buf<T = f32> {
    store: Store<T>,
}

#[derive(Clone, Debug)]
enum Store<T> {
    /// Ordinary host memory (the CPU backend).
    Host(Vec<T>),
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store::Host(Vec::new())
    }
}

/// Read-only memory on some device, borrowed for one call.
#[derive(Clone, Copy, Debug)]
pub enum Mem<'a, T = f32> {
    /// Host memory.
    Host(&'a [T]),
}

impl<'a, T> Mem<'a, T> {
    /// Elements.
    pub fn len(&self) -> usize {
        match self {
            Mem::Host(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host slice, when this memory is on the host.
    pub fn host(self) -> Option<&'a [T]> {
        match self {
            Mem::Host(s) => Some(s),
        }
    }
}

impl<'a, T> From<&'a [T]> for Mem<'a, T> {
    fn from(s: &'a [T]) -> Self {
        Mem::Host(s)
    }
}

impl<T> Buf<T> {
    /// Host memory taken over without a copy.
    pub fn from_host(v: Vec<T>) -> Self {
        Buf { store: Store::Host(v) }
    }

    /// Elements held (the capacity a kernel may use).
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Host(v) => v.len(),
        }
    }

    /// Whether the buffer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only view of the whole buffer.
    pub fn mem(&self) -> Mem<'_, T> {
        match &self.store {
            Store::Host(v) => Mem::Host(v),
        }
    }

    /// The contents, when the buffer is host memory (every buffer of the CPU backend).
    pub fn host(&self) -> Option<&[T]> {
        match &self.store {
            Store::Host(v) => Some(v),
        }
    }

    /// The contents, mutable, when the buffer is host memory.
    pub fn host_mut(&mut self) -> Option<&mut [T]> {
        match &mut self.store {
            Store::Host(v) => Some(v),
        }
    }

    /// The host vector itself (for backends that resize it), when the buffer is host memory.
    pub(crate) fn host_vec(&mut self) -> Option<&mut Vec<T>> {
        match &mut self.store {
            Store::Host(v) => Some(v),
        }
    }

    /// The host vector, taken out without a copy, when the buffer is host memory.
    pub fn into_host(self) -> Option<Vec<T>> {
        match self.store {
            Store::Host(v) => Some(v),
        }
    }
}
