// Embedding lookup and the scatter-add of its backward, in the CPU's summation order.

// out[i, :] = (word[ids[i]] + type[types[i]]) + pos[i % t] (HF's order; no types: type row 0),
// one block per token. Ids are checked on the host before the launch.
extern "C" __global__ void embedding_fwd(float* out, const int* ids, const int* types, const float* word,
                                         const float* pos, const float* typ, int n, int t, int e) {
    const int i = blockIdx.x;
    if (i >= n) return;
    const float* w = word + (i64)ids[i] * e;
    const float* ty = typ + (i64)(types ? types[i] : 0) * e;
    const float* p = pos + (i64)(i % t) * e;
    float* o = out + (i64)i * e;
    for (int c = threadIdx.x; c < e; c += blockDim.x) o[c] = (w[c] + ty[c]) + p[c];
}

// table[seg_row[s], :] += Σ dout[order[k], :] for k in seg_start[s]..seg_start[s+1], added one
// row at a time in ascending token order (the host sorts tokens by row, stably): the CPU's
// order, so the sums match it bit for bit. One block per segment (one table row).
extern "C" __global__ void scatter_segments(float* table, const float* dout, const int* order,
                                            const int* seg_start, const int* seg_row, int nseg, int e) {
    const int s = blockIdx.x;
    if (s >= nseg) return;
    const int k0 = seg_start[s], k1 = seg_start[s + 1];
    float* dst = table + (i64)seg_row[s] * e;
    for (int c = threadIdx.x; c < e; c += blockDim.x) {
        float acc = dst[c];
        for (int k = k0; k < k1; ++k) acc += dout[(i64)order[k] * e + c];
        dst[c] = acc;
    }
}

// dpos[p, :] += Σ_b dout[b·t + p, :] in batch order (positions 0..t of every row).
extern "C" __global__ void position_grad(float* dpos, const float* dout, int b, int t, int e) {
    FOR_EACH(i, (i64)t * e) {
        const i64 p = i / e, c = i % e;
        float acc = dpos[i];
        for (int r = 0; r < b; ++r) acc += dout[((i64)r * t + p) * e + c];
        dpos[i] = acc;
    }
}
