//! The ChaCha8 keystream of rand_chacha's `ChaCha8Rng`, word by word at any position: what the
//! CUDA backend's Gumbel kernel (`cuda/kernels/sample.cu`) computes on the device so that it
//! draws the very uniforms the CPU draws from the trainer's generator. This host mirror pins
//! the layout (key, counter and stream words) against rand_chacha in the tests below.

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What the device needs to reproduce `rng`'s next draws: its key, stream and word position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KeystreamAt {
    /// The 256-bit key (the seed) as little-endian words.
    pub key: [u32; 8],
    /// The stream (nonce) number.
    pub stream: u64,
    /// The index of the next word `rng` would return.
    pub word_pos: u64,
}

impl KeystreamAt {
    /// Where `rng` stands; `None` past 2^64 words (never reached: that is 2^60 draws per row).
    pub fn of(rng: &ChaCha8Rng) -> Option<Self> {
        let seed = rng.get_seed();
        let key = std::array::from_fn(|i| {
            u32::from_le_bytes([seed[4 * i], seed[4 * i + 1], seed[4 * i + 2], seed[4 * i + 3]])
        });
        Some(KeystreamAt { key, stream: rng.get_stream(), word_pos: u64::try_from(rng.get_word_pos()).ok()? })
    }
}

/// Where `rng` stands, moving it past the `words` words a consumer of that position reads (as
/// drawing them one by one would): how a caller hands its generator's stream to
/// [`crate::backend::Backend::gumbel_argmax`] and keeps every later draw where it was.
pub fn take(rng: &mut ChaCha8Rng, words: u64) -> Result<KeystreamAt> {
    let at = KeystreamAt::of(rng).ok_or_else(|| Error::Internal("the sampling generator passed 2^64 words".into()))?;
    skip(rng, words);
    Ok(at)
}

impl KeystreamAt {
    /// A generator standing at this position: it returns the words `of` promised.
    pub fn rng(&self) -> ChaCha8Rng {
        let mut seed = [0u8; 32];
        for (c, k) in seed.chunks_exact_mut(4).zip(self.key) {
            c.copy_from_slice(&k.to_le_bytes());
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos as u128);
        rng
    }
}

/// An inverted-dropout mask read from a keystream: element `i` of the buffer it applies to is
/// kept and scaled by 1/(1 − p) when keystream word `at.word_pos + i` is at least `threshold`
/// (p·2³², rounded), and zeroed otherwise. A pure function of (key, stream, position), so the
/// backward re-derives the forward's mask instead of storing it, every backend draws the same
/// mask (the CUDA kernel computes these words with `chacha8_block`), and no thread count can
/// change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropout {
    /// Words below this are dropped: round(p·2³²).
    pub threshold: u32,
    /// Where the mask's words start.
    pub at: KeystreamAt,
}

impl Dropout {
    /// The mask of probability `p` at `at`; `None` when nothing would be dropped (p ≤ 0 or NaN).
    /// p must be below 1 (the options refuse more).
    pub fn new(p: f32, at: KeystreamAt) -> Option<Self> {
        let threshold = Self::threshold_of(p);
        (threshold > 0).then_some(Dropout { threshold, at })
    }

    /// round(p·2³²), the threshold of probability `p` (0 for p ≤ 0 or NaN; p below 1).
    pub fn threshold_of(p: f32) -> u32 {
        (f64::from(p) * 4_294_967_296.0).round().clamp(0.0, f64::from(u32::MAX)) as u32
    }

    /// The drop probability the threshold stands for.
    pub fn p(&self) -> f64 {
        f64::from(self.threshold) / 4_294_967_296.0
    }

    /// 1/(1 − p), the kept elements' factor.
    pub fn scale(&self) -> f32 {
        (1.0 / (1.0 - self.p())) as f32
    }

    /// The same mask `words` elements further on (a buffer's slice starting there).
    pub fn offset(self, words: u64) -> Self {
        Dropout { at: KeystreamAt { word_pos: self.at.word_pos.wrapping_add(words), ..self.at }, ..self }
    }

    /// Applies the mask to `x`, element 0 at this position, on the calling thread. The words come
    /// a block at a time, so the select vectorises.
    pub fn apply(&self, x: &mut [f32]) {
        let mut words = Words::at(self.at);
        let s = self.scale();
        let mut buf = [0u32; WORD_BLOCK];
        for xs in x.chunks_mut(WORD_BLOCK) {
            let buf = &mut buf[..xs.len()];
            words.fill(buf);
            for (v, &w) in xs.iter_mut().zip(buf.iter()) {
                *v = if w >= self.threshold { *v * s } else { 0.0 };
            }
        }
    }
}

/// Keystream words made at a time: 16 ChaCha8 blocks.
///
/// cbindgen:ignore
pub const WORD_BLOCK: usize = 256;

/// The keystream from a position on: exactly the words `at.rng()` (rand_chacha's `ChaCha8Rng`)
/// would return, made 16 blocks at a time with one block per vector lane (AVX-512, AVX2 or
/// plain code by the thread's CPU kernel table; the same words from each), where rand_chacha
/// makes four. The masks and Gumbel noise of a training step read tens of millions of words.
pub struct Words {
    key: [u32; 8],
    stream: u64,
    /// The first block of the next 16 to make.
    block: u64,
    buf: [u32; WORD_BLOCK],
    /// Words of `buf` already handed out.
    used: usize,
}

impl Words {
    /// The words from `at` on.
    pub fn at(at: KeystreamAt) -> Self {
        let mut w = Words { key: at.key, stream: at.stream, block: at.word_pos / 16, buf: [0; WORD_BLOCK], used: 0 };
        w.refill();
        w.used = (at.word_pos % 16) as usize;
        w
    }

    fn refill(&mut self) {
        blocks16(&self.key, self.stream, self.block, &mut self.buf);
        self.block = self.block.wrapping_add(16);
        self.used = 0;
    }

    /// The next `out.len()` words.
    pub fn fill(&mut self, out: &mut [u32]) {
        let mut done = 0;
        while done < out.len() {
            if self.used == WORD_BLOCK {
                self.refill();
            }
            let n = (WORD_BLOCK - self.used).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[self.used..self.used + n]);
            (self.used, done) = (self.used + n, done + n);
        }
    }
}

/// Blocks `first..first + 16` of the ChaCha8 keystream into `out`, block after block: one block
/// per AVX-512 lane where the thread's CPU kernel table allows AVX-512, else rand_chacha's own
/// (AVX2 / NEON) code.
fn blocks16(key: &[u32; 8], stream: u64, first: u64, out: &mut [u32; WORD_BLOCK]) {
    #[cfg(target_arch = "x86_64")]
    if super::cpu::simd::isa() == super::cpu::simd::Isa::Avx512 {
        // SAFETY: the kernel table never names an ISA the CPU lacks: Avx512 means AVX-512F.
        return unsafe { wide::blocks16_avx512(key, stream, first, out) };
    }
    portable_blocks16(key, stream, first, out)
}

/// [`blocks16`] through rand_chacha.
fn portable_blocks16(key: &[u32; 8], stream: u64, first: u64, out: &mut [u32; WORD_BLOCK]) {
    use rand::Rng;
    let mut rng = KeystreamAt { key: *key, stream, word_pos: first.wrapping_mul(16) }.rng();
    rng.fill(&mut out[..]);
}

/// ChaCha8 over 16 blocks side by side with AVX-512: state word i of the 16 blocks in one
/// register, so every step of the rounds is one instruction for all of them.
#[cfg(target_arch = "x86_64")]
mod wide {
    /// [`super::blocks16`] with AVX-512F.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn blocks16_avx512(key: &[u32; 8], stream: u64, first: u64, out: &mut [u32; super::WORD_BLOCK]) {
        use std::arch::x86_64::*;
        #[inline(always)]
        unsafe fn quarter(x: &mut [__m512i; 16], a: usize, b: usize, c: usize, d: usize) {
            // SAFETY: AVX-512F is available (the caller's contract); register operations only.
            unsafe {
                x[a] = _mm512_add_epi32(x[a], x[b]);
                x[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[d], x[a]));
                x[c] = _mm512_add_epi32(x[c], x[d]);
                x[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[b], x[c]));
                x[a] = _mm512_add_epi32(x[a], x[b]);
                x[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[d], x[a]));
                x[c] = _mm512_add_epi32(x[c], x[d]);
                x[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[b], x[c]));
            }
        }
        let (mut lo, mut hi) = ([0u32; 16], [0u32; 16]);
        for l in 0..16 {
            let b = first.wrapping_add(l as u64);
            (lo[l], hi[l]) = (b as u32, (b >> 32) as u32);
        }
        // SAFETY: AVX-512F is available (this function's contract); loads and stores are of 16
        // u32 at a time, from `lo`, `hi` and into rows of `out` (unaligned forms).
        unsafe {
            let s: [__m512i; 16] = std::array::from_fn(|i| match i {
                0..4 => _mm512_set1_epi32(super::SIGMA[i] as i32),
                4..12 => _mm512_set1_epi32(key[i - 4] as i32),
                12 => _mm512_loadu_si512(lo.as_ptr().cast()),
                13 => _mm512_loadu_si512(hi.as_ptr().cast()),
                14 => _mm512_set1_epi32(stream as u32 as i32),
                _ => _mm512_set1_epi32((stream >> 32) as u32 as i32),
            });
            let mut x = s;
            super::rounds(&mut x, |x, a, b, c, d| quarter(x, a, b, c, d));
            let r: [__m512i; 16] = std::array::from_fn(|i| _mm512_add_epi32(x[i], s[i]));
            // A 16x16 transpose in registers (a block's words into one row): 32-bit, 64-bit,
            // then two 128-bit lane shuffles, each stage pairing rows.
            let t: [__m512i; 16] = std::array::from_fn(|i| {
                let (a, b) = (r[i & !1], r[i | 1]);
                if i % 2 == 0 {
                    _mm512_unpacklo_epi32(a, b)
                } else {
                    _mm512_unpackhi_epi32(a, b)
                }
            });
            let r: [__m512i; 16] = std::array::from_fn(|i| {
                let (g, k) = (i / 4 * 4, i % 4);
                let (a, b) = (t[g + k / 2], t[g + k / 2 + 2]);
                if k % 2 == 0 {
                    _mm512_unpacklo_epi64(a, b)
                } else {
                    _mm512_unpackhi_epi64(a, b)
                }
            });
            let t: [__m512i; 16] = std::array::from_fn(|i| {
                let (h, k) = (i / 8 * 8, i % 8);
                let (a, b) = (r[h + k % 4], r[h + k % 4 + 4]);
                if k < 4 {
                    _mm512_shuffle_i32x4::<0x88>(a, b)
                } else {
                    _mm512_shuffle_i32x4::<0xdd>(a, b)
                }
            });
            for i in 0..16 {
                let (a, b) = (t[i % 8], t[i % 8 + 8]);
                let v = if i < 8 { _mm512_shuffle_i32x4::<0x88>(a, b) } else { _mm512_shuffle_i32x4::<0xdd>(a, b) };
                _mm512_storeu_si512(out[16 * i..].as_mut_ptr().cast(), v);
            }
        }
    }
}

/// Moves `rng` past `words` words, as drawing them one by one would.
pub fn skip(rng: &mut ChaCha8Rng, words: u64) {
    let pos = rng.get_word_pos();
    rng.set_word_pos(pos + words as u128);
}

fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

/// ChaCha's constant words, "expand 32-byte k".
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// ChaCha8's four double rounds (columns, then diagonals) over a state of 16 words, with
/// `quarter` the quarter round on that state: scalars here, one word of 16 blocks per vector in
/// the AVX-512 generator.
#[inline(always)]
fn rounds<T>(x: &mut [T; 16], mut quarter: impl FnMut(&mut [T; 16], usize, usize, usize, usize)) {
    for _ in 0..4 {
        quarter(x, 0, 4, 8, 12);
        quarter(x, 1, 5, 9, 13);
        quarter(x, 2, 6, 10, 14);
        quarter(x, 3, 7, 11, 15);
        quarter(x, 0, 5, 10, 15);
        quarter(x, 1, 6, 11, 12);
        quarter(x, 2, 7, 8, 13);
        quarter(x, 3, 4, 9, 14);
    }
}

/// Block `block` of the ChaCha8 keystream (16 words), laid out as the device kernel lays it out.
pub fn chacha8_block(key: &[u32; 8], stream: u64, block: u64) -> [u32; 16] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&SIGMA);
    s[4..12].copy_from_slice(key);
    s[12] = block as u32;
    s[13] = (block >> 32) as u32;
    s[14] = stream as u32;
    s[15] = (stream >> 32) as u32;
    let mut x = s;
    rounds(&mut x, quarter);
    std::array::from_fn(|i| x[i].wrapping_add(s[i]))
}

/// rand's `StandardUniform` f32 from one word: the top 24 bits times 2^−24.
pub fn uniform_f32(w: u32) -> f32 {
    (w >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};

    #[test]
    fn mirror_matches_rand_chacha_at_any_position() {
        for (seed, stream, skip_words) in [(1u64, 0u64, 0u64), (42, 7, 5), (9, u64::MAX - 3, 1000), (3, 1, 63)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            skip(&mut rng, skip_words);
            let at = KeystreamAt::of(&rng).unwrap();
            assert_eq!(at.word_pos, skip_words);
            for i in 0..200u64 {
                let w = at.word_pos + i;
                let mine = chacha8_block(&at.key, at.stream, w / 16)[(w % 16) as usize];
                assert_eq!(mine, rng.next_u32(), "seed {seed} stream {stream} word {w}");
            }
        }
    }

    #[test]
    fn take_hands_over_the_stream_and_moves_past_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        rng.set_stream(3);
        skip(&mut rng, 7);
        let mut same = rng.clone();
        let at = take(&mut rng, 40).unwrap();
        let mut rebuilt = at.rng();
        for _ in 0..40 {
            assert_eq!(rebuilt.next_u32(), same.next_u32());
        }
        // The caller's generator goes on where the consumer stopped.
        let next = same.next_u32();
        assert_eq!(rng.next_u32(), next);
        assert_eq!(rebuilt.next_u32(), next);
    }

    /// The wide reader gives rand_chacha's words from any position, in any piece lengths, with
    /// every block generator this CPU runs.
    #[test]
    fn words_are_rand_chachas() {
        for (seed, stream, skip_words) in [(6u64, 3u64, 0u64), (1, 0, 5), (9, u64::MAX - 3, 1000), (3, 1, 255)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            skip(&mut rng, skip_words);
            let at = KeystreamAt::of(&rng).unwrap();
            let mut words = Words::at(at);
            for len in [1usize, 7, 16, 63, 256, 5, 300, 513] {
                let mut got = vec![0u32; len];
                words.fill(&mut got);
                let want: Vec<u32> = (0..len).map(|_| rng.next_u32()).collect();
                assert_eq!(got, want, "seed {seed}, stream {stream}, {len} words");
            }
            // Both block makers give the mirror's blocks.
            let first = at.word_pos / 16;
            let mut plain = [0u32; WORD_BLOCK];
            portable_blocks16(&at.key, at.stream, first, &mut plain);
            for (j, block) in plain.chunks_exact(16).enumerate() {
                assert_eq!(block, chacha8_block(&at.key, at.stream, first + j as u64), "block {j}");
            }
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx512f") {
                let mut got = [0u32; WORD_BLOCK];
                // SAFETY: AVX-512F was detected.
                unsafe { wide::blocks16_avx512(&at.key, at.stream, first, &mut got) };
                assert_eq!(got, plain);
            }
        }
    }

    #[test]
    fn uniform_matches_rand() {
        let mut a = ChaCha8Rng::seed_from_u64(5);
        let mut b = a.clone();
        for _ in 0..1000 {
            let u: f32 = a.random();
            assert_eq!(u.to_bits(), uniform_f32(b.next_u32()).to_bits());
        }
    }

    #[test]
    fn dropout_reads_the_keystream_at_its_offset() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        rng.set_stream(5);
        let d = Dropout::new(0.25, KeystreamAt::of(&rng).unwrap()).unwrap();
        assert_eq!(d.threshold, 1 << 30);
        assert_eq!(d.scale(), 1.0 / 0.75);
        let mut x = vec![1.0f32; 1000];
        d.apply(&mut x);
        for (i, &v) in x.iter().enumerate() {
            let keep = rng.next_u32() >= 1 << 30;
            assert_eq!(v, if keep { d.scale() } else { 0.0 }, "element {i}");
        }
        // A slice starting at element 37 sees the same mask as the whole buffer does there.
        let mut tail = vec![1.0f32; 963];
        d.offset(37).apply(&mut tail);
        assert_eq!(&x[37..], &tail[..]);
        let dropped = x.iter().filter(|&&v| v == 0.0).count();
        assert!((200..300).contains(&dropped), "{dropped} of 1000 dropped at p = 0.25");
        assert!(Dropout::new(0.0, d.at).is_none());
    }
}
