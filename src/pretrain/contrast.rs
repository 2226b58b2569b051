//! A sequence-level loss for [CLS] (option `cls_contrast_weight`): COCO-LM's sequence
//! contrastive learning, with the generator's pass as the second view so that it costs no
//! extra forward.
//!
//! Why: special tokens are never replaced, so replaced-token detection asks nothing of [CLS]
//! that depends on the sentence; at CPU budgets its final states stay nearly the same for every
//! input (mean pairwise cosine 0.99, docs/REPLICATION.md) and a [CLS] classifier starts from a
//! constant. Here each sequence's [CLS] state in the discriminator (over the corrupted input) and
//! in the generator (over the masked input) are two views of one sentence: projected, normalised
//! and compared by cosine over the micro-batch, each must pick out its partner among the other
//! sequences (InfoNCE both ways, as CLIP scores two towers). To do that a [CLS] state must say
//! what the sentence holds.
//!
//! The projections live in the trainer's parameter table under `cls_contrast.*`, trained,
//! clipped and checkpointed with the rest, but in no tower: the exported models are plain HF
//! ones. The similarity matrix is micro-batch × micro-batch: it is computed on the host in f64,
//! in a fixed order, so it is the same bits on every backend and for any thread count, and needs
//! no kernel of its own.

use crate::backend::{Backend, Buf, InputGrad, LossSum, Weights};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::layers::Linear;
use crate::model::{Backprop, Model, Towers};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Prefix of the projections' tensors in the trainer's table.
pub const PREFIX: &str = "cls_contrast";

/// The loss's two projections (discriminator H → P and generator Hg → P, P = H) and its
/// temperature.
#[derive(Clone, Debug)]
pub struct ClsContrast {
    /// `cls_contrast.discriminator.*`.
    pub disc_proj: Linear,
    /// `cls_contrast.generator.*`.
    pub gen_proj: Linear,
    /// τ: cosines are divided by it before the softmax.
    pub temperature: f32,
}

/// Buffers of the loss, reused by every step.
#[derive(Default, Debug)]
pub struct ContrastWork {
    /// Each sequence's first row `[B]`, for (B, T) `rows_of`.
    rows: Buf<i32>,
    rows_of: (usize, usize),
    /// The two towers' [CLS] states `[B, H]`, `[B, Hg]`.
    disc_cls: Buf,
    gen_cls: Buf,
    /// Their projections `[B, P]`, then the gradients of those.
    disc_z: Buf,
    gen_z: Buf,
    /// Gradients of the [CLS] states.
    d_disc_cls: Buf,
    d_gen_cls: Buf,
    /// Host copies: projections, then their gradients `[B, P]` each.
    host_disc: Vec<f32>,
    host_gen: Vec<f32>,
    /// The sequences that take part (a real first token).
    real: Vec<usize>,
}

/// The loss's projections, added to `model` (initialised as HF initialises a dense layer, from
/// `seed`, on a stream of their own) unless a resumed trainer's table already holds them.
pub fn attach(model: &mut Model, seed: u64, temperature: f32) -> Result<ClsContrast> {
    let Towers::Pair { disc, gen, .. } = &model.towers else {
        return Err(Error::arg(
            "options: cls_contrast_weight needs the electra objective (a generator and a discriminator)",
        ));
    };
    let (h, hg, std) = (disc.config.hidden_size, gen.config.hidden_size, disc.config.initializer_range);
    let normal = Normal::new(0.0f32, std)
        .map_err(|e| Error::Config(format!("initializer_range {std} is not a valid standard deviation: {e}")))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // A stream of its own: the model's initialisation (stream 0) is unchanged by the option.
    rng.set_stream(0x636c_7363);
    let store = &mut model.params;
    let mut proj = |tower: &str, din: usize| -> Result<Linear> {
        let (w, fresh) = super::head_tensor(store, PREFIX, &format!("{tower}.weight"), &[h, din])?;
        let (b, _) = super::head_tensor(store, PREFIX, &format!("{tower}.bias"), &[h])?;
        if fresh {
            for x in store.get_mut(w) {
                *x = normal.sample(&mut rng);
            }
        }
        Ok(Linear { w: store.span(w), b: store.span(b), din, dout: h })
    };
    let disc_proj = proj("discriminator", h)?;
    let gen_proj = proj("generator", hg)?;
    Ok(ClsContrast { disc_proj, gen_proj, temperature })
}

impl ClsContrast {
    /// The loss over the sequences of `batch` whose first token is real, from the towers' final
    /// states (`disc_hidden` `[B·T, H]`, `gen_hidden` `[B·T, Hg]`): its sum over sequences over
    /// `denom` and the sequences whose partner ranks first; the gradients of the projections'
    /// outputs (times `weight`, over `denom`) are kept for [`Self::backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        be: &dyn Backend,
        w: &Weights,
        work: &mut ContrastWork,
        disc_hidden: &Buf,
        gen_hidden: &Buf,
        batch: &Batch,
        weight: f32,
        denom: f64,
    ) -> Result<LossSum> {
        let (b, t) = (batch.batch, batch.seq_len);
        let (h, hg, p) = (self.disc_proj.din, self.gen_proj.din, self.disc_proj.dout);
        if work.rows_of != (b, t) {
            let first: Vec<i32> = (0..b)
                .map(|i| i32::try_from(i * t).map_err(|_| Error::arg("batch too large for the [CLS] rows")))
                .collect::<Result<_>>()?;
            be.upload_ids(&mut work.rows, &first)?;
            work.rows_of = (b, t);
        }
        work.real.clear();
        work.real.extend(real_rows(batch));
        for (buf, len) in [
            (&mut work.disc_cls, b * h),
            (&mut work.gen_cls, b * hg),
            (&mut work.disc_z, b * p),
            (&mut work.gen_z, b * p),
        ] {
            be.ensure(buf, len)?;
        }
        be.gather_rows(&mut work.disc_cls, disc_hidden, &work.rows, b, h)?;
        be.gather_rows(&mut work.gen_cls, gen_hidden, &work.rows, b, hg)?;
        be.linear(&mut work.disc_z, &work.disc_cls, w, &self.disc_proj, b)?;
        be.linear(&mut work.gen_z, &work.gen_cls, w, &self.gen_proj, b)?;
        work.host_disc.resize(b * p, 0.0);
        work.host_gen.resize(b * p, 0.0);
        be.download(work.disc_z.mem(), &mut work.host_disc)?;
        be.download(work.gen_z.mem(), &mut work.host_gen)?;
        let out = infonce(&mut work.host_disc, &mut work.host_gen, &work.real, p, self.temperature, weight, denom)?;
        be.upload(&mut work.disc_z, &work.host_disc)?;
        be.upload(&mut work.gen_z, &work.host_gen)?;
        Ok(out)
    }

    /// Backward of the last [`Self::forward`]: the projections' gradients into `bp`'s, and the
    /// [CLS] states' added to the first row of each sequence in `d_disc_hidden` and
    /// `d_gen_hidden`.
    pub fn backward(
        &self,
        bp: &mut Backprop,
        work: &mut ContrastWork,
        d_disc_hidden: &mut Buf,
        d_gen_hidden: &mut Buf,
    ) -> Result<()> {
        let (be, b) = (bp.be, work.rows_of.0);
        let (h, hg) = (self.disc_proj.din, self.gen_proj.din);
        be.ensure(&mut work.d_disc_cls, b * h)?;
        be.ensure(&mut work.d_gen_cls, b * hg)?;
        let p = &mut bp.params;
        be.linear_backward(InputGrad::Set(&mut work.d_disc_cls), p, &work.disc_z, &work.disc_cls, &self.disc_proj, b)?;
        be.linear_backward(InputGrad::Set(&mut work.d_gen_cls), p, &work.gen_z, &work.gen_cls, &self.gen_proj, b)?;
        be.scatter_rows(d_disc_hidden, &work.d_disc_cls, &work.rows, b, h, true)?;
        be.scatter_rows(d_gen_hidden, &work.d_gen_cls, &work.rows, b, hg, true)
    }
}

/// The rows of `batch` whose first token is real: the sequences the loss pairs.
pub(crate) fn real_rows<'a>(batch: &'a Batch) -> impl Iterator<Item = usize> + 'a {
    let t = batch.seq_len;
    (0..batch.batch).filter(move |&i| batch.attention_mask.is_none_or(|m| m[i * t] != 0))
}

/// Symmetric InfoNCE on the rows `real` of `a` and `g` (`[B, P]` each, overwritten by their
/// gradients times `weight / denom`, zero on the other rows), each view centred on the mean of
/// those rows (`ā`, `ḡ`): `s_ij = cos(a_i − ā, g_j − ḡ) / τ`, loss
/// `Σ_i ½ CE(s_i·, i) + ½ CE(s_·i, i)`, returned over `denom`, with the rows whose own partner
/// has the highest similarity in its row.
fn infonce(
    a: &mut [f32],
    g: &mut [f32],
    real: &[usize],
    p: usize,
    temperature: f32,
    weight: f32,
    denom: f64,
) -> Result<LossSum> {
    let r = real.len();
    // Each view centred on its micro-batch mean, then normalised: without the centring, states
    // that are all alike (as [CLS] states start) sit next to the trivial optimum where every
    // similarity is equal (loss ln B, gradient near 0), and training falls into it (as a
    // projection head's BatchNorm prevents in SimCLR and BYOL).
    let unit = |x: &[f32]| -> (Vec<Vec<f64>>, Vec<f64>) {
        let rows: Vec<&[f32]> = real.iter().map(|&i| &x[i * p..(i + 1) * p]).collect();
        let mean: Vec<f64> = (0..p).map(|k| rows.iter().map(|v| v[k] as f64).sum::<f64>() / r.max(1) as f64).collect();
        rows.iter()
            .map(|v| {
                let c: Vec<f64> = v.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect();
                let n = c.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                (c.iter().map(|x| x / n).collect(), n)
            })
            .unzip()
    };
    let (ua, na) = unit(a);
    let (ug, ng) = unit(g);
    if ua.iter().chain(&ug).flatten().any(|x| !x.is_finite()) {
        return Err(Error::NonFinite("the [CLS] contrast's projections".into()));
    }
    let tau = temperature as f64;
    let s: Vec<f64> =
        (0..r * r).map(|k| ua[k / r].iter().zip(&ug[k % r]).map(|(x, y)| x * y).sum::<f64>() / tau).collect();
    // d(loss)/d(s): ½ (softmax of the row − one-hot) + ½ (softmax of the column − one-hot).
    let mut ds = vec![0.0f64; r * r];
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for i in 0..r {
        for by_row in [true, false] {
            let at = |j: usize| if by_row { i * r + j } else { j * r + i };
            let max = (0..r).map(|j| s[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = (0..r).map(|j| (s[at(j)] - max).exp()).sum();
            loss += 0.5 * (max + z.ln() - s[at(i)]);
            for j in 0..r {
                ds[at(j)] += 0.5 * ((s[at(j)] - max).exp() / z - if j == i { 1.0 } else { 0.0 });
            }
        }
        // Retrieval accuracy: the discriminator's view finds its partner (ties count as misses).
        if (0..r).all(|j| j == i || s[i * r + j] < s[i * r + i]) {
            correct += 1;
        }
    }
    // Gradients of the centred rows: d(unit a_i) = Σ_j ds_ij ĝ_j, then through the
    // normalisation, (d − â (â·d)) / |a|; then through the centring, minus their mean.
    let scale = weight as f64 / (tau * denom);
    let centred = |u: &[Vec<f64>], n: &[f64], other: &[Vec<f64>], by_row: bool| -> Vec<Vec<f64>> {
        (0..r)
            .map(|i| {
                let at = |j: usize| if by_row { ds[i * r + j] } else { ds[j * r + i] };
                let d: Vec<f64> = (0..p).map(|k| (0..r).map(|j| at(j) * other[j][k]).sum::<f64>()).collect();
                let along: f64 = d.iter().zip(&u[i]).map(|(x, y)| x * y).sum();
                (0..p).map(|k| scale * (d[k] - u[i][k] * along) / n[i]).collect()
            })
            .collect()
    };
    for (dc, out) in [(centred(&ua, &na, &ug, true), &mut *a), (centred(&ug, &ng, &ua, false), &mut *g)] {
        out.fill(0.0);
        let mean: Vec<f64> = (0..p).map(|k| dc.iter().map(|d| d[k]).sum::<f64>() / r.max(1) as f64).collect();
        for (d, &row) in dc.iter().zip(real) {
            for k in 0..p {
                out[row * p + k] = (d[k] - mean[k]) as f32;
            }
        }
    }
    Ok(LossSum { loss: (loss / denom) as f32, correct })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient of [`infonce`] against central differences in f64 terms, with a
    /// padded row left out.
    #[test]
    fn infonce_gradient_matches_finite_differences() {
        let p = 3;
        let a0: Vec<f32> = (0..4 * p).map(|k| ((k * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let g0: Vec<f32> = (0..4 * p).map(|k| ((k * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let real = [0, 1, 3];
        let (tau, weight, denom) = (0.5, 2.0, 3.0);
        let (mut a, mut g) = (a0.clone(), g0.clone());
        let base = infonce(&mut a, &mut g, &real, p, tau, weight, denom).unwrap();
        assert!(base.loss > 0.0);
        assert!(a[2 * p..3 * p].iter().chain(&g[2 * p..3 * p]).all(|&x| x == 0.0), "the padded row has no gradient");
        let loss_at = |which: usize, k: usize, eps: f32| {
            let (mut a1, mut g1) = (a0.clone(), g0.clone());
            [&mut a1, &mut g1][which][k] += eps;
            infonce(&mut a1, &mut g1, &real, p, tau, weight, denom).unwrap().loss as f64
        };
        for (which, grad) in [(0, &a), (1, &g)] {
            for (k, &an) in grad.iter().enumerate() {
                let eps = 1e-2;
                let fd = weight as f64 * (loss_at(which, k, eps) - loss_at(which, k, -eps)) / (2.0 * eps as f64);
                let an = an as f64;
                assert!((fd - an).abs() < 2e-3 * (1.0 + an.abs()), "view {which} element {k}: analytic {an} fd {fd}");
            }
        }
    }

    /// Identical views of well-separated rows: near-zero loss, every partner found.
    #[test]
    fn infonce_finds_identical_partners() {
        let p = 4;
        let mut a = vec![0.0f32; 4 * p];
        for i in 0..4 {
            a[i * p + i] = 1.0;
        }
        let mut g = a.clone();
        let out = infonce(&mut a, &mut g, &[0, 1, 2, 3], p, 0.05, 1.0, 4.0).unwrap();
        assert_eq!(out.correct, 4);
        assert!(out.loss < 1e-6, "{}", out.loss);
    }
}
