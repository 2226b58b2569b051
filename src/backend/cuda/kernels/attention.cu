// Attention's row kernels; the products (Q·Kᵀ, P·V and their backward) run on cuBLAS.

// The additive key mask HF builds: 0 where the mask is 1 (or absent), f32::MIN where 0.
extern "C" __global__ void key_mask(float* mask_add, const int* mask, int n) {
    FOR_EACH(i, n) mask_add[i] = (mask == 0 || mask[i] != 0) ? 0.0f : -3.40282347e+38f;
}

// In place over rows of t scores: p = softmax(s·scale + mask[b, :]), one warp per row; rows
// are [B, NH, T] (row r belongs to batch row r / (NH·T)).
extern "C" __global__ void softmax_fwd(float* p, const float* mask_add, int rows, int t, int nh, float scale) {
    const int row = blockIdx.x * (blockDim.x / WARP) + (threadIdx.x / WARP);
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    float* r = p + (i64)row * t;
    const float* m = mask_add + (i64)(row / (nh * t)) * t;
    float mx = NEG_INF;
    for (int j = lane; j < t; j += WARP) {
        float v = fmaf(r[j], scale, m[j]);
        r[j] = v;
        mx = fmaxf(mx, v);
    }
    mx = warp_max(mx);
    float s = 0.0f;
    for (int j = lane; j < t; j += WARP) {
        float e = expf(r[j] - mx);
        r[j] = e;
        s += e;
    }
    const float inv = 1.0f / warp_sum(s);
    for (int j = lane; j < t; j += WARP) r[j] *= inv;
}

// In place over rows of t: ds = p ⊙ (ds − Σⱼ ds·p).
extern "C" __global__ void softmax_bwd(float* ds, const float* p, int rows, int t) {
    const int row = blockIdx.x * (blockDim.x / WARP) + (threadIdx.x / WARP);
    if (row >= rows) return;
    const int lane = threadIdx.x & 31;
    float* d = ds + (i64)row * t;
    const float* pr = p + (i64)row * t;
    float dot = 0.0f;
    for (int j = lane; j < t; j += WARP) dot += d[j] * pr[j];
    dot = warp_sum(dot);
    for (int j = lane; j < t; j += WARP) d[j] = pr[j] * (d[j] - dot);
}
