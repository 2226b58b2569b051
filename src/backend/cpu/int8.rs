//! TEMPORARY scalar stand-in (replaced by the int8 kernels branch).
#![allow(missing_docs, clippy::needless_range_loop)]
use crate::error::{Error, Result};
use std::ops::Range;

pub struct QuantWeight {
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
    pub dout: usize,
    pub din: usize,
}

pub fn quantize_weight(w: &[f32], dout: usize, din: usize) -> Result<QuantWeight> {
    let mut q = vec![0i8; dout * din];
    let mut scale = vec![0f32; dout];
    for o in 0..dout {
        let row = &w[o * din..(o + 1) * din];
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::arg(format!("weight row {o} element {i} is not finite")));
        }
        let m = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        if m == 0.0 {
            continue;
        }
        scale[o] = m / 127.0;
        for i in 0..din {
            q[o * din + i] = (row[i] / scale[o]).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
    }
    Ok(QuantWeight { q, scale, dout, din })
}

impl QuantWeight {
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.dout * self.din).map(|i| self.q[i] as f32 * self.scale[i / self.din]).collect()
    }
}

pub struct PackedI8 {
    q: Vec<i8>,
    scale: Vec<f32>,
    dout: usize,
    din: usize,
}

impl PackedI8 {
    pub const PANEL: usize = 16;
    pub fn new(w: &QuantWeight) -> Result<Self> {
        Ok(PackedI8 { q: w.q.clone(), scale: w.scale.clone(), dout: w.dout, din: w.din })
    }
    pub fn dout(&self) -> usize {
        self.dout
    }
    pub fn din(&self) -> usize {
        self.din
    }
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scale.len()
    }
}

#[derive(Default)]
pub struct QuantRows {
    q: Vec<i8>,
    scale: Vec<f32>,
    din: usize,
}

impl QuantRows {
    pub fn quantize(&mut self, x: &[f32], n: usize, din: usize) -> Result<()> {
        self.q.resize(n * din, 0);
        self.scale.resize(n, 0.0);
        self.din = din;
        for r in 0..n {
            let row = &x[r * din..(r + 1) * din];
            let m = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            if !m.is_finite() {
                self.scale[r] = f32::NAN;
                continue;
            }
            if m == 0.0 {
                self.scale[r] = 0.0;
                self.q[r * din..(r + 1) * din].fill(0);
                continue;
            }
            let inv = 127.0 / m;
            self.scale[r] = m / 127.0;
            for i in 0..din {
                self.q[r * din + i] = (row[i] * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
        }
        Ok(())
    }
}

pub fn matmul(y: &mut [f32], ldy: usize, x: &QuantRows, rows: Range<usize>, w: &PackedI8, cols: Range<usize>) {
    let din = w.din;
    for r in rows {
        for c in cols.clone() {
            let mut acc = 0i32;
            for k in 0..din {
                acc += x.q[r * x.din + k] as i32 * w.q[c * din + k] as i32;
            }
            y[r * ldy + c] = acc as f32 * (x.scale[r] * w.scale[c]);
        }
    }
}
