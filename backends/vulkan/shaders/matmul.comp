#version 450
// C = alpha * op(A) @ op(B) + beta * C, tiled through shared memory. Each workgroup computes
// a BM x BN tile of C (grid: x over n, y over m, z over the batch), stepping k by BK; each of
// its (BM/TM) * (BN/TN) invocations owns a TM x TN register tile, strided so that neighbouring
// invocations touch neighbouring columns. Tile sizes are specialization constants; TRANS_A /
// TRANS_B select the operand layouts at compile time.
// p[0] m, p[1] n, p[2] k, p[3] lda, p[4] ldb, p[5] ldc, p[6..8] batch strides of A, B, C,
// p[9] alpha, p[10] beta (0: C is not read).
#include "common.glsl"
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(std430, binding = 0) buffer C { float c[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
shared float As[BK * BM];
shared float Bs[BK * BN];
void main()
{
    uint m = pc.p[0], n = pc.p[1], k = pc.p[2];
    uint lda = pc.p[3], ldb = pc.p[4], ldc = pc.p[5];
    uint z = gl_WorkGroupID.z;
    uint abase = pc.base[1] + z * pc.p[6], bbase = pc.base[2] + z * pc.p[7], cbase = pc.base[0] + z * pc.p[8];
    uint i0 = gl_WorkGroupID.y * BM, j0 = gl_WorkGroupID.x * BN;
    uint tid = gl_LocalInvocationID.x;
    const uint RM = BM / TM, RN = BN / TN;
    uint tr = tid / RN, tc = tid % RN;
    float acc[TM * TN];
    [[unroll]] for (uint q = 0; q < TM * TN; q++) acc[q] = 0.0;
    float ar[TM], br[TN];
    for (uint p0 = 0; p0 < k; p0 += BK) {
        for (uint l = tid; l < BM * BK; l += WG) {
#ifdef TRANS_A
            uint p = l / BM, i = l % BM;
            As[p * BM + i] = (i0 + i < m && p0 + p < k) ? a[abase + (p0 + p) * lda + i0 + i] : 0.0;
#else
            uint i = l / BK, p = l % BK;
            As[p * BM + i] = (i0 + i < m && p0 + p < k) ? a[abase + (i0 + i) * lda + p0 + p] : 0.0;
#endif
        }
        for (uint l = tid; l < BN * BK; l += WG) {
#ifdef TRANS_B
            uint j = l / BK, p = l % BK;
            Bs[p * BN + j] = (j0 + j < n && p0 + p < k) ? b[bbase + (j0 + j) * ldb + p0 + p] : 0.0;
#else
            uint p = l / BN, j = l % BN;
            Bs[p * BN + j] = (j0 + j < n && p0 + p < k) ? b[bbase + (p0 + p) * ldb + j0 + j] : 0.0;
#endif
        }
        barrier();
        [[unroll]] for (uint p = 0; p < BK; p++) {
            [[unroll]] for (uint ii = 0; ii < TM; ii++) ar[ii] = As[p * BM + tr + ii * RM];
            [[unroll]] for (uint jj = 0; jj < TN; jj++) br[jj] = Bs[p * BN + tc + jj * RN];
            [[unroll]] for (uint ii = 0; ii < TM; ii++)
                [[unroll]] for (uint jj = 0; jj < TN; jj++) acc[ii * TN + jj] += ar[ii] * br[jj];
        }
        barrier();
    }
    float alpha = pf(9), beta = pf(10);
    [[unroll]] for (uint ii = 0; ii < TM; ii++) {
        uint i = i0 + tr + ii * RM;
        if (i >= m) continue;
        [[unroll]] for (uint jj = 0; jj < TN; jj++) {
            uint j = j0 + tc + jj * RN;
            if (j >= n) continue;
            uint ci = cbase + i * ldc + j;
            float r = alpha * acc[ii * TN + jj];
            if (beta != 0.0) r += beta * c[ci];
            c[ci] = r;
        }
    }
}
