//! The tiny data-parallel setup shared by tests/distributed.rs (ranks as threads) and
//! tests/mpi.rs (ranks under mpirun): options, the model, each step's combined batch.

use electra::pretrain::{TrainOptions, Trainer};
use electra::session::Batch;

pub const B: usize = 4; // rows per rank
pub const T: usize = 16;
pub const STEPS: usize = 5;

pub fn opts() -> TrainOptions {
    TrainOptions {
        learning_rate: 2e-3,
        warmup_steps: 2,
        total_steps: 100,
        max_seq_len: T,
        mask_token_id: 4,
        special_token_ids: vec![0, 1, 2, 3, 4],
        mask_prob: 0.25,
        seed: 11,
        threads: 1,
        ..Default::default()
    }
}

pub fn trainer(o: TrainOptions) -> Trainer {
    Trainer::from_model(super::pair(super::TINY_DISC, true, 5), o).unwrap()
}

/// Step `s`'s batch of `rows` rows, padded differently per row: ids, mask, types.
pub fn data(s: usize, rows: usize) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let (mut ids, mut mask, mut types) = (vec![0; rows * T], vec![0; rows * T], vec![0; rows * T]);
    for r in 0..rows {
        let len = T - (r * 5 + s * 3) % 9;
        for i in 0..len {
            ids[r * T + i] = if i == 0 {
                2
            } else if i == len - 1 {
                3
            } else {
                5 + ((r * 7 + i * 3 + s) % 55) as i32
            };
            mask[r * T + i] = 1;
            types[r * T + i] = (i >= len / 2) as i32;
        }
    }
    (ids, mask, types)
}

pub fn batch<'a>(d: &'a (Vec<i32>, Vec<i32>, Vec<i32>), rows: std::ops::Range<usize>) -> Batch<'a> {
    let r = rows.start * T..rows.end * T;
    Batch {
        input_ids: &d.0[r.clone()],
        attention_mask: Some(&d.1[r.clone()]),
        token_type_ids: Some(&d.2[r]),
        batch: rows.len(),
        seq_len: T,
    }
}

/// Worst |a − b| / max(|b|, 1e-3) (weights are ~0.02; LayerNorm gains ~1).
pub fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).abs() / (y.abs() as f64).max(1e-3)).fold(0.0, f64::max)
}

pub fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// `steps` steps of rank `r` of `n` (rows r·B.. of each step's combined batch): losses, weights.
pub fn run_rank(t: &mut Trainer, r: usize, n: usize, steps: std::ops::Range<usize>) -> Vec<[f32; 3]> {
    steps
        .map(|s| {
            let d = data(s, n * B);
            let st = t.train_step(&batch(&d, r * B..(r + 1) * B)).unwrap();
            [st.loss, st.mlm_loss, st.disc_loss]
        })
        .collect()
}
