// Losses: softmax cross-entropy over the vocabulary (one block per row) and the weighted
// sigmoid BCE of the discriminator (per-block partial sums). Loss sums are f64, as on the CPU,
// and are finished on the host in a fixed order.

__device__ int block_min_int(int v, int* sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Row r of `logits` (v wide) becomes k·(softmax − onehot(target)); row_loss[r] = lse − x[target]
// (f64), row_correct[r] = whether the first maximum is the target.
extern "C" __global__ void cross_entropy(float* logits, double* row_loss, int* row_correct, const int* targets,
                                         int m, int v, float k) {
    __shared__ float shf[32];
    __shared__ int shi[32];
    const int r = blockIdx.x;
    if (r >= m) return;
    float* x = logits + (i64)r * v;
    const int tgt = targets[r];
    float mx = NEG_INF;
    for (int j = threadIdx.x; j < v; j += blockDim.x) mx = fmaxf(mx, x[j]);
    mx = block_max(mx, shf);
    int arg = 0x7fffffff;
    for (int j = threadIdx.x; j < v; j += blockDim.x)
        if (x[j] == mx) {
            arg = j;
            break;
        }
    arg = block_min_int(arg, shi);
    float s = 0.0f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) s += expf(x[j] - mx);
    s = block_sum(s, shf);
    const double lse = (double)mx + log((double)s);
    const float xt = x[tgt];
    __syncthreads();  // every read of the row is done before it is overwritten
    const float lsef = (float)lse;
    for (int j = threadIdx.x; j < v; j += blockDim.x) x[j] = expf(x[j] - lsef) * k;
    __syncthreads();
    if (threadIdx.x == 0) {
        x[tgt] -= k;
        row_loss[r] = lse - (double)xt;
        row_correct[r] = (arg == tgt);
    }
}

// dlogits = scale·w·(σ(x) − y)/denom; part_loss[block] = Σ w·bce and part_correct[block] =
// rows with w > 0 predicted right, over this block's elements.
extern "C" __global__ void bce(float* dlogits, double* part_loss, int* part_correct, const float* logits,
                               const float* labels, const float* weights, int n, float scale, double denom) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    double l = 0.0;
    float ok = 0.0f;
    if (i < n) {
        const double x = logits[i], y = labels[i], w = weights[i];
        l = w * (fmax(x, 0.0) - x * y + log1p(exp(-fabs(x))));
        ok = (w > 0.0 && ((logits[i] > 0.0f) == (labels[i] > 0.5f))) ? 1.0f : 0.0f;
        const double s = 1.0 / (1.0 + exp(-x));
        dlogits[i] = (float)((double)scale * w * (s - y) / denom);
    }
    l = block_sum_d(l, shd);
    ok = block_sum(ok, shf);
    if (threadIdx.x == 0) {
        part_loss[blockIdx.x] = l;
        part_correct[blockIdx.x] = (int)ok;
    }
}
