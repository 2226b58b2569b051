// Elementwise kernels: bias and activation epilogues of the matrix products, the activation
// backward, fill, scale and add.

// pre[r, j] += bias[j]; act[r, j] = f(pre[r, j]) when `act` is given. `pre` holds x·Wᵀ.
extern "C" __global__ void bias_act(float* pre, float* act, const float* bias, i64 n, int d, int a) {
    FOR_EACH(i, n * d) {
        float v = pre[i] + bias[i % d];
        pre[i] = v;
        if (act) act[i] = act_fwd(a, v);
    }
}

extern "C" __global__ void activation_fwd(float* out, const float* x, i64 n, int a) {
    FOR_EACH(i, n) out[i] = act_fwd(a, x[i]);
}

// dx = dout · f'(x); `dx` may be `dout` (in place: the Linear backward through f).
extern "C" __global__ void activation_bwd(float* dx, const float* dout, const float* x, i64 n, int a) {
    FOR_EACH(i, n) dx[i] = dout[i] * act_grad(a, x[i]);
}

extern "C" __global__ void fill(float* x, i64 n, float v) {
    FOR_EACH(i, n) x[i] = v;
}

extern "C" __global__ void scale(float* x, i64 n, float s) {
    FOR_EACH(i, n) x[i] *= s;
}

extern "C" __global__ void add(float* dst, const float* src, i64 n) {
    FOR_EACH(i, n) dst[i] += src[i];
}

// Within one buffer: buf[dst + i] = buf[a + i] (+ buf[b + i]) with `sources` 1 (2), zeros with
// 0; the spans checked on the host (in bounds, apart from dst).
extern "C" __global__ void combine_spans(float* buf, i64 dst, i64 a, i64 b, int sources, i64 n) {
    FOR_EACH(i, n) {
        float x = 0.0f;
        if (sources > 0) x = buf[a + i];
        if (sources > 1) x += buf[b + i];
        buf[dst + i] = x;
    }
}

// dst[i, :] = src[rows[i], :] (rows checked on the host).
extern "C" __global__ void gather_rows(float* dst, const float* src, const int* rows, int m, int width) {
    FOR_EACH(i, (i64)m * width) {
        i64 r = i / width, c = i % width;
        dst[i] = src[(i64)rows[r] * width + c];
    }
}

// dst[rows[i], :] (+)= src[i, :] (rows distinct, checked on the host).
extern "C" __global__ void scatter_rows(float* dst, const float* src, const int* rows, int m, int width, int accumulate) {
    FOR_EACH(i, (i64)m * width) {
        i64 r = i / width, c = i % width;
        float* d = dst + (i64)rows[r] * width + c;
        *d = accumulate ? *d + src[i] : src[i];
    }
}

// Mean pooling: dst[g, c] = Σ_r m[g·t + r]·src[g·t + r, c] / Σ_r m[g·t + r], one thread per
// (group, column) summing rows in order, so the bits are the CPU's; mask NULL: every row. A group
// without a valid row gives 0.
extern "C" __global__ void mean_rows(float* dst, const float* src, const int* mask, int groups, int t, int width) {
    FOR_EACH(i, (i64)groups * width) {
        i64 g = i / width, c = i % width;
        float s = 0.0f;
        int count = 0;
        for (int r = 0; r < t; r++) {
            i64 row = g * t + r;
            if (mask == 0 || mask[row] != 0) {
                s += src[row * width + c];
                count++;
            }
        }
        dst[i] = count > 0 ? s / (float)count : 0.0f;
    }
}

// Its backward: dsrc[g·t + r, c] = m[g·t + r]·ddst[g, c] / Σ_r m[g·t + r] (padding rows 0), one
// thread per (group, column) as the forward.
extern "C" __global__ void mean_rows_bwd(float* dsrc, const float* ddst, const int* mask, int groups, int t, int width) {
    FOR_EACH(i, (i64)groups * width) {
        i64 g = i / width, c = i % width;
        int count = 0;
        for (int r = 0; r < t; r++) count += (mask == 0 || mask[g * t + r] != 0);
        const float d = ddst[i];
        for (int r = 0; r < t; r++) {
            i64 row = g * t + r;
            dsrc[row * width + c] = (mask == 0 || mask[row] != 0) ? d / (float)count : 0.0f;
        }
    }
}
