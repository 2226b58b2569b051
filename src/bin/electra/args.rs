//! Value parsers of the numeric flags: every number is checked when the command line is parsed,
//! so a zero, negative, non-finite or absurd value is a usage error (exit status 2, naming the
//! flag) before any file is read or written. The bounds are the library's own where it has one
//! (`MAX_THREADS`, `MAX_DIM`, the optimizer's learning-rate range), so a value the flag accepts
//! is never refused later, after the work.

use electra::backend::MAX_THREADS;
use electra::config::MAX_DIM;

/// Parses an integer in `lo..=hi`, with a message that gives the range.
fn int_in<T>(s: &str, lo: T, hi: T, why: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let v: T = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number in {lo}..={hi}"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range: {why} ({lo}..={hi})"));
    }
    Ok(v)
}

/// Parses a finite float in `(lo, hi]` (or `[lo, hi]` when `lo_inclusive`), also as an f32 (a
/// value that rounds to 0 as an f32 is not above 0).
fn float_in(s: &str, lo: f64, lo_inclusive: bool, hi: f64, why: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    let v32 = v as f32 as f64;
    let above = if lo_inclusive { v >= lo && v32 >= lo } else { v > lo && v32 > lo };
    if !(v.is_finite() && above && v <= hi) {
        let open = if lo_inclusive { '[' } else { '(' };
        return Err(format!("{v} is out of range: {why} (finite, in {open}{lo}, {hi}])"));
    }
    Ok(v)
}

/// Rows of a batch: at least 1. The upper end is the memory check's (a size the machine cannot
/// hold is refused with the bytes it needs, before anything is allocated).
pub fn batch_size(s: &str) -> Result<usize, String> {
    int_in(s, 1, usize::MAX, "a batch has at least one row")
}

/// Tokens per row: [CLS] and [SEP] at least, at most the library's largest dimension.
pub fn seq_len(s: &str) -> Result<usize, String> {
    int_in(s, 2, MAX_DIM, "a row holds [CLS] and [SEP] at least")
}

/// Worker threads: 0 (one per core) up to the library's `MAX_THREADS`.
pub fn threads(s: &str) -> Result<usize, String> {
    int_in(s, 0, MAX_THREADS, "0 means one per core")
}

/// A count that must be at least 1 (epochs, repetitions, candidates, log interval, batches).
pub fn positive(s: &str) -> Result<usize, String> {
    int_in(s, 1, usize::MAX, "it must be at least 1")
}

/// A step count or interval that may be 0 (its meaning is in the flag's help).
pub fn steps(s: &str) -> Result<u64, String> {
    int_in(s, 0, u64::MAX, "a count of steps")
}

/// A step interval of at least 1.
pub fn every(s: &str) -> Result<u64, String> {
    int_in(s, 1, u64::MAX, "an interval of at least one step")
}

/// Micro-batches per step: the library's range.
pub fn accumulate_steps(s: &str) -> Result<usize, String> {
    int_in(s, 1, 1 << 16, "micro-batches per step")
}

/// Peak learning rate: the optimizer's range, (0, 1].
pub fn learning_rate(s: &str) -> Result<f32, String> {
    float_in(s, 0.0, false, 1.0, "typical rates are 1e-5 to 1e-3").map(|v| v as f32)
}

/// `--dropout`: true (config.json's probabilities), false, or one probability in [0, 1).
pub fn dropout(s: &str) -> Result<electra::options::DropoutSetting, String> {
    electra::options::DropoutSetting::parse(s).map_err(|e| e.to_string())
}

/// Sampling temperature: finite and positive (the library's rule); above 1000 sampling is
/// uniform to f32 precision, so a larger value is a mistake.
pub fn temperature(s: &str) -> Result<f32, String> {
    float_in(s, 0.0, false, 1000.0, "the generator's sampling temperature").map(|v| v as f32)
}

/// Generator hidden size as a fraction of the discriminator's: (0, 1], the library's rule.
pub fn fraction(s: &str) -> Result<f64, String> {
    float_in(s, 0.0, false, 1.0, "a fraction of the discriminator's hidden size")
}

/// Layer-wise learning-rate decay: (0, 1], the fine-tuner's rule.
pub fn layer_decay(s: &str) -> Result<f32, String> {
    float_in(s, 0.0, false, 1.0, "1 disables it").map(|v| v as f32)
}

/// Decoupled weight decay: finite and >= 0; with the learning rate at most 1 the optimizer's
/// rule `learning_rate x weight_decay < 1` holds for any value below 1.
pub fn weight_decay(s: &str) -> Result<f32, String> {
    let v = float_in(s, 0.0, true, 1.0, "typically 0.01")?;
    if v >= 1.0 {
        return Err(format!("{v} is out of range: typically 0.01 (finite, in [0, 1))"));
    }
    Ok(v as f32)
}

/// Seconds of a collective's deadline: finite, positive, at most a week.
pub fn timeout(s: &str) -> Result<f64, String> {
    float_in(s, 0.0, false, 7.0 * 86400.0, "seconds")
}

/// A CPU kernel cap: the library's values.
pub fn simd(s: &str) -> Result<electra::backend::Simd, String> {
    s.parse().map_err(|e: electra::Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(batch_size("0").is_err() && batch_size("-1").is_err() && batch_size("1").is_ok());
        assert!(seq_len("1").is_err() && seq_len("2").is_ok());
        assert!(threads(&(MAX_THREADS + 1).to_string()).is_err() && threads("0").is_ok());
        for bad in ["0", "-1e-3", "nan", "inf", "2", "x"] {
            assert!(learning_rate(bad).is_err(), "{bad}");
        }
        assert!(learning_rate("1e-4").is_ok() && temperature("0").is_err() && temperature("nan").is_err());
        assert!(weight_decay("0").is_ok() && weight_decay("1").is_err() && weight_decay("-0.1").is_err());
    }
}
