//! Embedding lookup (word + token type + position) and its scatter-add backward. The lookup
//! runs in row blocks over the pool; the backward splits the width into column blocks, each
//! scattering every token in order, so sums do not depend on the thread count.

use super::super::Tokens;
use super::par::{for_ranges, rows_mut, threads, RowsMut};
use crate::error::{Error, Result};
use crate::layers::Embeddings;

/// Checks that every id and type indexes its table and that `t` positions exist, so the kernels
/// below never index out of bounds (callers validate user input first; this guards the seam).
pub fn check_ids(x: Tokens<[i32]>, emb: &Embeddings) -> Result<()> {
    let (ids, types, t) = (x.ids, x.types, x.t);
    let e = emb.ln.dim.max(1);
    let (vocab, npos, ntypes) = (emb.word.len / e, emb.pos.len / e, emb.typ.len / e);
    let bad = |what: &str, x: i32, n: usize| Error::Internal(format!("embedding: {what} {x} is outside [0, {n})"));
    if let Some(&x) = ids.iter().find(|&&x| x < 0 || x as usize >= vocab) {
        return Err(bad("id", x, vocab));
    }
    if let Some(&x) = types.and_then(|ty| ty.iter().find(|&&x| x < 0 || x as usize >= ntypes)) {
        return Err(bad("token type", x, ntypes));
    }
    if t > npos {
        return Err(bad("position", t as i32 - 1, npos));
    }
    Ok(())
}

/// The word embedding table of a lookup.
#[derive(Clone, Copy, Debug)]
pub enum WordTable<'a> {
    /// `[V, E]` f32.
    F32(&'a [f32]),
    /// `[V, E]` int8 with one scale per row (an int8 model): row `id` is `q[id]·scale[id]`.
    Int8 {
        /// The int8 values, row-major.
        q: &'a [i8],
        /// One scale per row.
        scale: &'a [f32],
    },
}

/// The three tables of an embedding lookup, `[·, E]` each (`W`: the word table's form, `T`:
/// the others'): the tables themselves, or their gradients.
pub struct Tables<W, T> {
    /// Word table `[V, E]`.
    pub word: W,
    /// Position table `[T_max, E]`.
    pub pos: T,
    /// Token-type table `[types, E]`.
    pub typ: T,
}

/// `out[b·T+t] = word[ids] + type[types] + pos[t]`, each of width `e` (HF's summation order).
pub fn embedding_forward(out: &mut [f32], x: Tokens<[i32]>, tables: Tables<WordTable, &[f32]>, e: usize) {
    let (Tokens { ids, types, b, t }, Tables { word, pos, typ }) = (x, tables);
    rows_mut(&mut out[..b * t * e], e, 64, |r0, block| {
        for (i, o) in block.chunks_exact_mut(e).enumerate() {
            let n = r0 + i;
            let ti = n % t;
            let id = ids[n] as usize;
            let ty = types.map_or(0, |tt| tt[n] as usize);
            let y = &typ[ty * e..(ty + 1) * e];
            let p = &pos[ti * e..(ti + 1) * e];
            match word {
                WordTable::F32(word) => {
                    let w = &word[id * e..(id + 1) * e];
                    for i in 0..e {
                        o[i] = (w[i] + y[i]) + p[i];
                    }
                }
                WordTable::Int8 { q, scale } => {
                    let (w, s) = (&q[id * e..(id + 1) * e], scale[id]);
                    for i in 0..e {
                        o[i] = (w[i] as f32 * s + y[i]) + p[i];
                    }
                }
            }
        }
    });
}

/// Scatter-adds `dout` into the three tables. The `padding_idx` row of the word table gets no
/// gradient from the lookup, as in HF (`nn.Embedding(padding_idx=pad_token_id)`).
pub fn embedding_backward(
    d: Tables<&mut [f32], &mut [f32]>,
    dout: &[f32],
    x: Tokens<[i32]>,
    e: usize,
    padding_idx: Option<usize>,
) {
    let (Tables { word: dword, pos: dpos, typ: dtyp }, Tokens { ids, types, b, t }) = (d, x);
    let (dw, dp, dt) =
        (RowsMut::new(dword, 1, dword.len()), RowsMut::new(dpos, 1, dpos.len()), RowsMut::new(dtyp, 1, dtyp.len()));
    let parts = if b * t * e < 1 << 15 { 1 } else { threads() };
    for_ranges(e, parts, 32.min(e).max(1), 16, |c0, c1| {
        for n in 0..b * t {
            let ti = n % t;
            let g = &dout[n * e + c0..n * e + c1];
            let id = ids[n] as usize;
            let ty = types.map_or(0, |tt| tt[n] as usize);
            // SAFETY: for_ranges gives tasks disjoint column ranges [c0, c1), and every span
            // here lies in this task's columns of one table row, so concurrent spans never
            // overlap (`span` bounds-checks each).
            unsafe {
                if Some(id) != padding_idx {
                    add(dw.span(id * e + c0, id * e + c1), g);
                }
                add(dt.span(ty * e + c0, ty * e + c1), g);
                add(dp.span(ti * e + c0, ti * e + c1), g);
            }
        }
    });
}

fn add(d: &mut [f32], g: &[f32]) {
    for (d, v) in d.iter_mut().zip(g) {
        *d += v;
    }
}
