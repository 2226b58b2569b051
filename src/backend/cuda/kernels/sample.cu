// Gumbel-max sampling with the trainer's own random stream: the uniforms are words of the
// ChaCha8 keystream of the host's `ChaCha8Rng` (rand_chacha), computed here at the positions
// the host would have drawn them, so the CPU and the GPU sample the same ids from the same
// logits. backend/keystream.rs holds the host mirror of this function and its test against
// rand_chacha.

#define ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QUARTER(a, b, c, d)                                                                  \
    a += b; d ^= a; d = ROTL32(d, 16);                                                       \
    c += d; b ^= c; b = ROTL32(b, 12);                                                       \
    a += b; d ^= a; d = ROTL32(d, 8);                                                        \
    c += d; b ^= c; b = ROTL32(b, 7);

// The 16 words of ChaCha8 block `block` of stream `stream` under `key`.
__device__ __forceinline__ void chacha8_block(u32 out[16], const u32 key[8], u64 stream, u64 block) {
    u32 s[16];
    s[0] = 0x61707865u; s[1] = 0x3320646eu; s[2] = 0x79622d32u; s[3] = 0x6b206574u;
    for (int i = 0; i < 8; ++i) s[4 + i] = key[i];
    s[12] = (u32)block; s[13] = (u32)(block >> 32);
    s[14] = (u32)stream; s[15] = (u32)(stream >> 32);
    u32 x[16];
    for (int i = 0; i < 16; ++i) x[i] = s[i];
    for (int r = 0; r < 4; ++r) {
        QUARTER(x[0], x[4], x[8], x[12]);
        QUARTER(x[1], x[5], x[9], x[13]);
        QUARTER(x[2], x[6], x[10], x[14]);
        QUARTER(x[3], x[7], x[11], x[15]);
        QUARTER(x[0], x[5], x[10], x[15]);
        QUARTER(x[1], x[6], x[11], x[12]);
        QUARTER(x[2], x[7], x[8], x[13]);
        QUARTER(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; ++i) out[i] = x[i] + s[i];
}

// rand's StandardUniform f32: the top 24 bits of one word, times 2^-24.
__device__ __forceinline__ float uniform_f32(u32 w) { return (float)(w >> 8) * 5.9604644775390625e-8f; }

// (best, arg) over the warp: the larger score, then the smaller index; NaN never wins.
__device__ __forceinline__ void warp_argmax(float& best, int& arg) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oa = __shfl_xor_sync(0xffffffffu, arg, o);
        if (ob > best || (ob == best && oa < arg)) {
            best = ob;
            arg = oa;
        }
    }
}

struct ChaChaArgs {
    u32 key[8];
    u64 stream;
    u64 word_pos;  // the host generator's word position before the draw
};

// out[r] = argmax_j(logits[r, j]/τ + g), g = −log(−log(u + 1e−9) + 1e−9), u the keystream word at
// word_pos + r·v + j; the first maximum wins, NaN never does (the CPU's `s > best`). One block
// per row; each thread computes whole keystream blocks.
extern "C" __global__ void gumbel_argmax(int* out, const float* logits, int m, int v, float temperature,
                                         ChaChaArgs rng) {
    __shared__ float shs[32];
    __shared__ int shj[32];
    const int r = blockIdx.x;
    if (r >= m) return;
    const float* x = logits + (i64)r * v;
    const u64 w0 = rng.word_pos + (u64)r * (u64)v, w1 = w0 + (u64)v;
    float best = NEG_INF;
    int arg = 0x7fffffff;
    u32 words[16];
    for (u64 blk = w0 / 16 + threadIdx.x; blk * 16 < w1; blk += blockDim.x) {
        chacha8_block(words, rng.key, rng.stream, blk);
        for (int k = 0; k < 16; ++k) {
            const u64 w = blk * 16 + k;
            if (w < w0 || w >= w1) continue;
            const int j = (int)(w - w0);
            const float u = uniform_f32(words[k]);
            const float g = -logf(-logf(u + 1e-9f) + 1e-9f);
            const float s = x[j] / temperature + g;
            if (s > best) {  // j rises within a thread: the first maximum stays
                best = s;
                arg = j;
            }
        }
    }
    // (best, arg) over the block: larger score, then smaller index.
    warp_argmax(best, arg);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        shs[w] = best;
        shj[w] = arg;
    }
    __syncthreads();
    if (w == 0) {
        best = lane < nw ? shs[lane] : NEG_INF;
        arg = lane < nw ? shj[lane] : 0x7fffffff;
        warp_argmax(best, arg);
        if (lane == 0) out[r] = arg == 0x7fffffff ? 0 : arg;
    }
}
