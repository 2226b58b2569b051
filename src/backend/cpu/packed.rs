//! TEMPORARY scalar stand-in (replaced by the packed fp32 kernels branch).
#![allow(missing_docs, clippy::needless_range_loop)]
use crate::error::Result;
use std::ops::Range;

pub struct PackedF32 {
    w: Vec<f32>,
    dout: usize,
    din: usize,
}

impl PackedF32 {
    pub fn new(w: &[f32], dout: usize, din: usize) -> Result<Self> {
        Ok(PackedF32 { w: w[..dout * din].to_vec(), dout, din })
    }
    pub fn dout(&self) -> usize {
        self.dout
    }
    pub fn din(&self) -> usize {
        self.din
    }
    pub fn bytes(&self) -> usize {
        4 * self.w.len()
    }
    pub fn panel(&self) -> usize {
        16
    }
}

pub fn matmul(y: &mut [f32], ldy: usize, x: &[f32], ldx: usize, rows: Range<usize>, w: &PackedF32, cols: Range<usize>) {
    for r in rows {
        for c in cols.clone() {
            let mut acc = 0f32;
            for k in 0..w.din {
                acc += x[r * ldx + k] * w.w[c * w.din + k];
            }
            y[r * ldy + c] = acc;
        }
    }
}
