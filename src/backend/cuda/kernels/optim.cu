// The optimizer's kernels: Σx² in f64 per fixed chunk (finished on the host in chunk order),
// max |x| per chunk (the bounds that let an update skip its check pass), and AdamW over a list of tensors with their own learning rate and decay.

extern "C" __global__ void sum_squares(double* part, const float* x, i64 n, int chunk) {
    __shared__ double sh[32];
    const i64 c0 = (i64)blockIdx.x * chunk;
    const i64 c1 = c0 + chunk < n ? c0 + chunk : n;
    double s = 0.0;
    for (i64 i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
        const double v = x[i];
        s += v * v;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// part[block] = max |x| over the block's `chunk` elements (0 for none); fmaxf ignores NaN, as
// the CPU's fold does, and a max is exact in any order.
extern "C" __global__ void max_abs(float* part, const float* x, i64 n, int chunk) {
    __shared__ float sh[32];
    const i64 c0 = (i64)blockIdx.x * chunk;
    const i64 c1 = c0 + chunk < n ? c0 + chunk : n;
    float s = 0.0f;
    for (i64 i = c0 + threadIdx.x; i < c1; i += blockDim.x) s = fmaxf(s, fabsf(x[i]));
    s = block_max(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// Element e of the concatenated tensors belongs to tensor ti with prefix[ti] <= e < prefix[ti+1]
// and sits at offs[ti] + e − prefix[ti] of the flat buffers. With commit = 0 nothing is written
// but bad[ti] = 1 for each tensor whose new weight or moments would not be finite.
extern "C" __global__ void adamw(float* params, const float* grads, float* m, float* v, const i64* offs,
                                 const i64* prefix, const float* lrs, const float* wds, int ntensors,
                                 float beta1, float beta2, float eps, float c1, float c2, int* bad, int commit) {
    const i64 total = prefix[ntensors];
    FOR_EACH(e, total) {
        int lo = 0, hi = ntensors - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) >> 1;
            if (prefix[mid] <= e) lo = mid; else hi = mid - 1;
        }
        const i64 i = offs[lo] + (e - prefix[lo]);
        const float g = grads[i], p = params[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        const float update = (mi / c1) / (sqrtf(vi / c2) + eps) + wds[lo] * p;
        const float np = p - lrs[lo] * update;
        if (commit) {
            params[i] = np;
            m[i] = mi;
            v[i] = vi;
        } else if (!(isfinite(np) && isfinite(mi) && isfinite(vi))) {
            bad[lo] = 1;
        }
    }
}
