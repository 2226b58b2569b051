// Inverted dropout with the host's mask (backend/keystream.rs `Dropout`): element i is kept, times
// `scale`, when ChaCha8 keystream word rng.word_pos + i is at least `threshold`, and zeroed
// otherwise. Each thread computes whole keystream blocks (16 words), as the Gumbel kernel does.
extern "C" __global__ void dropout(float* x, i64 n, unsigned int threshold, float scale, ChaChaArgs rng) {
    const u64 w0 = rng.word_pos, w1 = w0 + (u64)n;
    u32 words[16];
    for (u64 blk = w0 / 16 + (u64)blockIdx.x * blockDim.x + threadIdx.x; blk * 16 < w1;
         blk += (u64)gridDim.x * blockDim.x) {
        chacha8_block(words, rng.key, rng.stream, blk);
        for (int k = 0; k < 16; ++k) {
            const u64 w = blk * 16 + k;
            if (w < w0 || w >= w1) continue;
            const i64 i = (i64)(w - w0);
            x[i] = words[k] >= threshold ? x[i] * scale : 0.0f;
        }
    }
}
