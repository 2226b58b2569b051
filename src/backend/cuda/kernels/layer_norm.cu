// LayerNorm over rows of c, one warp per row (BERT's post-LN block and the embeddings), and its
// backward. Mean and variance in f32 as PyTorch computes them, two passes over the row.

// The row statistics and the normalised output of row `x` (length c) into `out`.
__device__ __forceinline__ void ln_row(float* out, float* mean, float* rstd, const float* x, const float* g,
                                       const float* b, int c, float eps) {
    const int lane = threadIdx.x & 31;
    float s = 0.0f;
    for (int j = lane; j < c; j += WARP) s += x[j];
    const float mu = warp_sum(s) / c;
    float q = 0.0f;
    for (int j = lane; j < c; j += WARP) {
        float d = x[j] - mu;
        q += d * d;
    }
    const float rs = rsqrtf(warp_sum(q) / c + eps);
    for (int j = lane; j < c; j += WARP) out[j] = (x[j] - mu) * rs * g[j] + b[j];
    if (lane == 0) {
        *mean = mu;
        *rstd = rs;
    }
}

extern "C" __global__ void layer_norm_fwd(float* out, float* mean, float* rstd, const float* x, const float* g,
                                          const float* b, int n, int c, float eps) {
    const int row = blockIdx.x * (blockDim.x / WARP) + (threadIdx.x / WARP);
    if (row >= n) return;
    const i64 o = (i64)row * c;
    ln_row(out + o, mean + row, rstd + row, x + o, g, b, c, eps);
}

// BERT's block output: sum = sum + bias + residual (sum holds x·Wᵀ), out = LayerNorm(sum).
extern "C" __global__ void bias_residual_layer_norm(float* sum, float* out, float* mean, float* rstd,
                                                    const float* bias, const float* residual, const float* g,
                                                    const float* b, int n, int c, float eps) {
    const int row = blockIdx.x * (blockDim.x / WARP) + (threadIdx.x / WARP);
    if (row >= n) return;
    const int lane = threadIdx.x & 31;
    const i64 o = (i64)row * c;
    for (int j = lane; j < c; j += WARP) sum[o + j] = sum[o + j] + bias[j] + residual[o + j];
    __syncwarp();
    ln_row(out + o, mean + row, rstd + row, sum + o, g, b, c, eps);
}

// dx = rstd·(dout·γ − mean(dout·γ) − x̂·mean(dout·γ·x̂)), assigned; `xhat_dout` gets dout·x̂ for
// the γ gradient (a column sum the host side runs as one matrix-vector product).
extern "C" __global__ void layer_norm_bwd(float* dx, float* xhat_dout, const float* dout, const float* x,
                                          const float* g, const float* mean, const float* rstd, int n, int c) {
    const int row = blockIdx.x * (blockDim.x / WARP) + (threadIdx.x / WARP);
    if (row >= n) return;
    const int lane = threadIdx.x & 31;
    const i64 o = (i64)row * c;
    const float mu = mean[row], rs = rstd[row];
    float a = 0.0f, bsum = 0.0f;
    for (int j = lane; j < c; j += WARP) {
        float xh = (x[o + j] - mu) * rs, dg = dout[o + j] * g[j];
        a += dg;
        bsum += dg * xh;
    }
    a = warp_sum(a) / c;
    bsum = warp_sum(bsum) / c;
    for (int j = lane; j < c; j += WARP) {
        float xh = (x[o + j] - mu) * rs, d = dout[o + j];
        dx[o + j] = rs * (d * g[j] - a - xh * bsum);
        xhat_dout[o + j] = d * xh;
    }
}
