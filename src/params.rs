//! `ParamStore`: every weight of a model in one flat `Vec<f32>`, with a [`ParamTable`] of (name,
//! shape, offset). Optimizer, clipping, gradient zeroing and checkpointing are single passes over it,
//! and a tied weight is one entry that every use reads and accumulates into.

use std::collections::HashMap;

/// Index of one tensor in a [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// One tensor's entry in the table.
#[derive(Clone, Debug)]
pub struct ParamInfo {
    /// Canonical name: `<scope>.<HF name>`, e.g. `discriminator.electra.embeddings.LayerNorm.weight`.
    pub name: String,
    /// Shape, row-major (Linear weights are `[out, in]` as in PyTorch).
    pub shape: Vec<usize>,
    /// Start in the flat buffer.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
    /// Whether AdamW weight decay applies (false for LayerNorm and biases, as the original).
    pub decay: bool,
    /// Learning-rate multiplier (1 by default; layer-wise decay sets it for fine-tuning).
    pub lr_scale: f32,
}

/// The name table of a flat parameter layout: every tensor's name, shape, offset and optimizer
/// settings, without the values. Weights, gradients and Adam moments all share this layout.
#[derive(Clone, Debug, Default)]
pub struct ParamTable {
    infos: Vec<ParamInfo>,
    by_name: HashMap<String, ParamId>,
    numel: usize,
}

/// Flat parameter storage in host memory: the table plus every value. Derefs to its
/// [`ParamTable`], so `store.info(id)` and `store.id(name)` read the table.
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    /// Names, shapes and offsets.
    pub table: ParamTable,
    /// All values, tensors laid out back to back in registration order.
    pub data: Vec<f32>,
    /// Whether `data`'s spare capacity is zero-filled memory never written since it was mapped
    /// ([`ParamStore::reserve`] on an empty store): `add` then extends `data` over it without
    /// writing, so the pages of tensors nobody writes (the f32 spans of an int8 model's weights)
    /// never become resident.
    pub zeroed_spare: bool,
}

/// Whether the original ELECTRA optimizer decays a tensor with this name.
pub fn decays(name: &str) -> bool {
    !(name.contains("LayerNorm") || name.contains("layer_norm") || name.contains("bias"))
}

impl ParamTable {
    /// The table, in layout order.
    pub fn infos(&self) -> &[ParamInfo] {
        &self.infos
    }

    /// One tensor's entry.
    pub fn info(&self, id: ParamId) -> &ParamInfo {
        &self.infos[id.0]
    }

    /// Mutable entry (to set `lr_scale`).
    pub fn info_mut(&mut self, id: ParamId) -> &mut ParamInfo {
        &mut self.infos[id.0]
    }

    /// Looks a tensor up by canonical name.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether the table has no tensors.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// The span of a tensor.
    pub fn span(&self, id: ParamId) -> Span {
        let i = &self.infos[id.0];
        Span { off: i.offset, len: i.len }
    }
}

impl std::ops::Deref for ParamStore {
    type Target = ParamTable;

    fn deref(&self) -> &ParamTable {
        &self.table
    }
}

impl std::ops::DerefMut for ParamStore {
    fn deref_mut(&mut self) -> &mut ParamTable {
        &mut self.table
    }
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves room for `numel` scalars in all, fallibly: [`crate::error::Error::OutOfMemory`]
    /// with the size when the allocator refuses. Models call it with their size (checked
    /// against the machine's memory first) before registering, so `add` never reallocates.
    pub fn reserve(&mut self, numel: usize) -> crate::error::Result<()> {
        if self.data.is_empty() && self.data.capacity() < numel {
            let mut v = crate::alloc::try_zeroed_f32(numel, "model weights")?;
            v.clear();
            self.data = v;
            self.zeroed_spare = true;
            return Ok(());
        }
        let more = numel.saturating_sub(self.data.len());
        self.data.try_reserve_exact(more).map_err(|_| crate::alloc::oom::<f32>(numel, "model weights"))
    }

    /// Registers a zero-filled tensor and returns its id. Names must be unique.
    pub fn add(&mut self, name: impl Into<String>, shape: &[usize]) -> ParamId {
        let name = name.into();
        assert!(!self.table.by_name.contains_key(&name), "duplicate parameter {name}");
        let len = shape.iter().product();
        let id = ParamId(self.table.infos.len());
        self.table.infos.push(ParamInfo {
            decay: decays(&name),
            name: name.clone(),
            shape: shape.to_vec(),
            offset: self.table.numel,
            len,
            lr_scale: 1.0,
        });
        self.table.numel += len;
        if self.zeroed_spare && self.table.numel <= self.data.capacity() {
            // SAFETY: the spare capacity up to `capacity()` is zero-filled memory from
            // `try_zeroed_f32` that nothing has written since (`zeroed_spare` is set only by
            // `reserve`, and `data` grows only here), and all-zero bits are the f32 0.0: the
            // new elements are initialised zeros, as `resize` would write them.
            unsafe { self.data.set_len(self.table.numel) };
        } else {
            self.zeroed_spare = false;
            self.data.resize(self.table.numel, 0.0);
        }
        self.table.by_name.insert(name, id);
        id
    }

    /// Every value, in layout order.
    pub fn values(&self) -> &[f32] {
        &self.data
    }

    /// A tensor's values.
    pub fn get(&self, id: ParamId) -> &[f32] {
        self.span(id).of(&self.data)
    }

    /// A tensor's values, mutable.
    pub fn get_mut(&mut self, id: ParamId) -> &mut [f32] {
        let s = self.span(id);
        s.of_mut(&mut self.data)
    }
}

/// Where one tensor sits in a flat buffer. Weights, gradients and Adam moments share the
/// layout, so a layer indexes any of them with the spans it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start.
    pub off: usize,
    /// Number of elements.
    pub len: usize,
}

impl Span {
    /// This tensor's slice of a flat buffer.
    #[inline]
    pub fn of<'a>(&self, flat: &'a [f32]) -> &'a [f32] {
        &flat[self.off..self.off + self.len]
    }

    /// This tensor's slice of a flat buffer, mutable.
    #[inline]
    pub fn of_mut<'a>(&self, flat: &'a mut [f32]) -> &'a mut [f32] {
        &mut flat[self.off..self.off + self.len]
    }
}
