//! Embedding lookup (word + token type + position) and its scatter-add backward.

/// `out[b·T+t] = word[ids] + type[types] + pos[t]`, each of width `e` (HF's summation order).
#[allow(clippy::too_many_arguments)]
pub fn embedding_forward(
    out: &mut [f32],
    ids: &[i32],
    types: Option<&[i32]>,
    word: &[f32],
    pos: &[f32],
    typ: &[f32],
    b: usize,
    t: usize,
    e: usize,
) {
    for bi in 0..b {
        for ti in 0..t {
            let n = bi * t + ti;
            let id = ids[n] as usize;
            let ty = types.map_or(0, |tt| tt[n] as usize);
            let o = &mut out[n * e..(n + 1) * e];
            let w = &word[id * e..(id + 1) * e];
            let y = &typ[ty * e..(ty + 1) * e];
            let p = &pos[ti * e..(ti + 1) * e];
            for i in 0..e {
                o[i] = (w[i] + y[i]) + p[i];
            }
        }
    }
}

/// Scatter-adds `dout` into the three tables. The `padding_idx` row of the word table gets no
/// gradient from the lookup, as in HF (`nn.Embedding(padding_idx=pad_token_id)`).
#[allow(clippy::too_many_arguments)]
pub fn embedding_backward(
    dword: &mut [f32],
    dpos: &mut [f32],
    dtyp: &mut [f32],
    dout: &[f32],
    ids: &[i32],
    types: Option<&[i32]>,
    b: usize,
    t: usize,
    e: usize,
    padding_idx: Option<usize>,
) {
    for bi in 0..b {
        for ti in 0..t {
            let n = bi * t + ti;
            let g = &dout[n * e..(n + 1) * e];
            let id = ids[n] as usize;
            let ty = types.map_or(0, |tt| tt[n] as usize);
            if Some(id) != padding_idx {
                for (d, v) in dword[id * e..(id + 1) * e].iter_mut().zip(g) {
                    *d += v;
                }
            }
            for (d, v) in dtyp[ty * e..(ty + 1) * e].iter_mut().zip(g) {
                *d += v;
            }
            for (d, v) in dpos[ti * e..(ti + 1) * e].iter_mut().zip(g) {
                *d += v;
            }
        }
    }
}
