// Shared by every kernel of the CUDA backend (compiled as one NVRTC program with the other
// files of this folder). Conventions as on the CPU: outputs first, then inputs, then sizes.
// Reductions run in a fixed tree per launch configuration, so a result never depends on
// scheduling: the same inputs give the same bits on every run.

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define WARP 32
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the sum.
// `sh` holds 32 floats of shared memory.
__device__ float block_sum(float v, float* sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    v = warp_sum(v);
    return v;
}

__device__ double block_sum_d(double v, double* sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    v = warp_sum_d(v);
    return v;
}

__device__ float block_max(float v, float* sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : NEG_INF;
    v = warp_max(v);
    return v;
}

// The activations of backend::Activation, by its declaration order (Activation::ALL).
#define ACT_GELU 0
#define ACT_GELU_TANH 1
#define ACT_GELU_FAST 2
#define ACT_QUICK_GELU 3
#define ACT_RELU 4
#define ACT_SILU 5
#define ACT_TANH 6
#define ACT_SIGMOID 7
#define ACT_LINEAR 8

#define SQRT_2_OVER_PI 0.7978845608f
#define INV_SQRT_2 0.70710678118654752f
#define INV_SQRT_2PI 0.3989422804014327f

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float act_fwd(int a, float x) {
    switch (a) {
    case ACT_GELU: return 0.5f * x * (1.0f + erff(x * INV_SQRT_2));
    case ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    case ACT_GELU_FAST: return 0.5f * x * (1.0f + tanhf(x * SQRT_2_OVER_PI * (1.0f + 0.044715f * x * x)));
    case ACT_QUICK_GELU: return x * sigmoidf_(1.702f * x);
    case ACT_RELU: return fmaxf(x, 0.0f);
    case ACT_SILU: return x * sigmoidf_(x);
    case ACT_TANH: return tanhf(x);
    case ACT_SIGMOID: return sigmoidf_(x);
    default: return x;
    }
}

__device__ __forceinline__ float act_grad(int a, float x) {
    switch (a) {
    case ACT_GELU: return 0.5f * (1.0f + erff(x * INV_SQRT_2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
    case ACT_GELU_TANH:
    case ACT_GELU_FAST: {
        float t = tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case ACT_QUICK_GELU: {
        float s = sigmoidf_(1.702f * x);
        return s + 1.702f * x * s * (1.0f - s);
    }
    case ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case ACT_SILU: {
        float s = sigmoidf_(x);
        return s + x * s * (1.0f - s);
    }
    case ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case ACT_SIGMOID: {
        float s = sigmoidf_(x);
        return s * (1.0f - s);
    }
    default: return 1.0f;
    }
}

// Grid-stride loop over [0, n) with 64-bit indices (logit buffers pass 2^31 elements).
#define FOR_EACH(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)gridDim.x * blockDim.x)
