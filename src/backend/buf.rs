//! Device memory as the seam sees it: [`Buf`], an owned buffer on one backend's device, and
//! [`Mem`], read-only memory a kernel may read without owning it (a model's host weights shared
//! by many sessions, or a view of a `Buf`).
//!
//! Host memory (the CPU backend) and, with the `cuda` feature, CUDA device memory. Every place
//! that must handle a kind of memory (the backends' accessors, the downloads) matches on it, so
//! adding one fails to compile until each does.

/// What a buffer may hold: `f32` (activations, gradients, weights) and `i32` (ids).
#[cfg(feature = "cuda")]
pub trait Elem:
    Copy + Default + std::fmt::Debug + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits
{
}
/// What a buffer may hold: `f32` (activations, gradients, weights) and `i32` (ids).
#[cfg(not(feature = "cuda"))]
pub trait Elem: Copy + Default + std::fmt::Debug {}
impl Elem for f32 {}
impl Elem for i32 {}

/// An owned buffer of `T` (f32 activations, gradients, weights; i32 ids) on one device. An empty
/// buffer (the default) belongs to no device yet: [`crate::backend::Backend::ensure`] gives it
/// memory on the backend that first sizes it. Buffers only grow, so a handle that has run once
/// allocates nothing more for calls of the same or smaller shape.
#[derive(Debug, Default)]
pub struct Buf<T: Elem = f32> {
    store: Store<T>,
}

#[derive(Debug)]
enum Store<T: Elem> {
    /// Ordinary host memory (the CPU backend).
    Host(Vec<T>),
    /// CUDA device memory.
    #[cfg(feature = "cuda")]
    Cuda(DeviceBuf<T>),
}

/// A CUDA allocation and, for id buffers, the host copy of what was last uploaded.
///
/// Ids are born on the host (batches, masked positions, sampled replacements), so the CUDA
/// backend keeps what it uploaded: it checks ranges there, as the CPU does, and orders the
/// embedding gradient's scatter by id without a device sort.
#[cfg(feature = "cuda")]
#[derive(Debug)]
pub struct DeviceBuf<T: Elem> {
    /// The device memory.
    pub dev: cudarc::driver::CudaSlice<T>,
    /// The host copy of the leading elements last uploaded (empty when unknown).
    pub shadow: Vec<T>,
}

impl<T: Elem> Default for Store<T> {
    fn default() -> Self {
        Store::Host(Vec::new())
    }
}

impl<T: Elem> Clone for Buf<T> {
    /// A copy on the same device. A device copy that cannot be made (out of memory) panics, as
    /// `Vec::clone` does; the library clones only host buffers.
    fn clone(&self) -> Self {
        let store = match &self.store {
            Store::Host(v) => Store::Host(v.clone()),
            #[cfg(feature = "cuda")]
            Store::Cuda(d) => Store::Cuda(DeviceBuf { dev: d.dev.clone(), shadow: d.shadow.clone() }),
        };
        Buf { store }
    }
}

/// Read-only memory on some device, borrowed for one call.
#[derive(Clone, Copy, Debug)]
pub enum Mem<'a, T: Elem = f32> {
    /// Host memory.
    Host(&'a [T]),
    /// CUDA device memory.
    #[cfg(feature = "cuda")]
    Cuda(&'a cudarc::driver::CudaSlice<T>),
}

impl<'a, T: Elem> Mem<'a, T> {
    /// Elements.
    pub fn len(&self) -> usize {
        match self {
            Mem::Host(s) => s.len(),
            #[cfg(feature = "cuda")]
            Mem::Cuda(s) => s.len(),
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
            #[cfg(feature = "cuda")]
            Mem::Cuda(_) => None,
        }
    }
}

impl<'a, T: Elem> From<&'a [T]> for Mem<'a, T> {
    fn from(s: &'a [T]) -> Self {
        Mem::Host(s)
    }
}

impl<T: Elem> Buf<T> {
    /// Host memory taken over without a copy.
    pub fn from_host(v: Vec<T>) -> Self {
        Buf { store: Store::Host(v) }
    }

    /// Elements held (the capacity a kernel may use).
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Host(v) => v.len(),
            #[cfg(feature = "cuda")]
            Store::Cuda(d) => d.dev.len(),
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
            #[cfg(feature = "cuda")]
            Store::Cuda(d) => Mem::Cuda(&d.dev),
        }
    }

    /// The contents, when the buffer is host memory (every buffer of the CPU backend).
    pub fn host(&self) -> Option<&[T]> {
        match &self.store {
            Store::Host(v) => Some(v),
            #[cfg(feature = "cuda")]
            Store::Cuda(_) => None,
        }
    }

    /// The contents, mutable, when the buffer is host memory.
    pub fn host_mut(&mut self) -> Option<&mut [T]> {
        match &mut self.store {
            Store::Host(v) => Some(v),
            #[cfg(feature = "cuda")]
            Store::Cuda(_) => None,
        }
    }

    /// The host vector itself (for backends that resize it), when the buffer is host memory.
    pub(crate) fn host_vec(&mut self) -> Option<&mut Vec<T>> {
        match &mut self.store {
            Store::Host(v) => Some(v),
            #[cfg(feature = "cuda")]
            Store::Cuda(_) => None,
        }
    }

    /// The host vector, taken out without a copy, when the buffer is host memory.
    pub fn into_host(self) -> Option<Vec<T>> {
        match self.store {
            Store::Host(v) => Some(v),
            #[cfg(feature = "cuda")]
            Store::Cuda(_) => None,
        }
    }

    /// Device memory taken over.
    #[cfg(feature = "cuda")]
    pub(crate) fn from_device(dev: cudarc::driver::CudaSlice<T>) -> Self {
        Buf { store: Store::Cuda(DeviceBuf { dev, shadow: Vec::new() }) }
    }

    /// The CUDA allocation, when the buffer is one.
    #[cfg(feature = "cuda")]
    pub(crate) fn device(&self) -> Option<&DeviceBuf<T>> {
        match &self.store {
            Store::Cuda(d) => Some(d),
            Store::Host(_) => None,
        }
    }

    /// The CUDA allocation, mutable, when the buffer is one.
    #[cfg(feature = "cuda")]
    pub(crate) fn device_mut(&mut self) -> Option<&mut DeviceBuf<T>> {
        match &mut self.store {
            Store::Cuda(d) => Some(d),
            Store::Host(_) => None,
        }
    }
}
