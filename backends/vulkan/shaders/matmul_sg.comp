#version 450
// C = alpha * op(A) @ op(B) + beta * C, register-blocked across a subgroup, for devices whose
// storage-buffer and shared-memory loads are expensive per invocation (CPU drivers: lavapipe
// turns every SSBO or shared load into a loop over the SIMD lanes, ~100 cycles per lane, while
// uniform texel buffer fetches are vectorised gathers). A and B are read as RGBA32F uniform
// texel buffers (one fetch = 4 floats), there is no shared memory and no barrier.
//
// Each invocation owns 4 adjacent columns of C and R rows (R a multiple of SG, the subgroup
// size); the rows' A values are loaded once per subgroup (lane l loads row/column l's vec4)
// and handed to every lane with subgroupBroadcast. Per 4 steps of k an invocation does R/SG + 4
// fetches and 16 R multiply-adds. A workgroup is NSG subgroups side by side along n:
// R rows x NSG*SG*4 columns (grid: x over n, y over m, z over the batch).
//
// The host guarantees: lda, ldb, the batch strides of A and B and the bases of A and B are
// multiples of 4 elements, and each operand's view reaches the end of its last row's leading
// dimension (so a vec4 that starts inside a row stays inside the view). Fetches beyond m, n or
// k are clamped to valid addresses and their contributions zeroed, so no lane reads outside.
// p[0] m, p[1] n, p[2] k, p[3] lda, p[4] ldb, p[5] ldc, p[6..8] batch strides of A, B, C,
// p[9] alpha, p[10] beta (0: C is not read). base[1], base[2] are in vec4 units.
#extension GL_KHR_shader_subgroup_basic : enable
#extension GL_KHR_shader_subgroup_shuffle : enable
#include "common.glsl"
layout(constant_id = 1) const uint SG = 8;   // subgroup size
layout(constant_id = 2) const uint R = 16;   // rows per invocation (multiple of SG)
layout(constant_id = 3) const uint NSG = 2;  // subgroups per workgroup (along n)
layout(std430, binding = 0) buffer C { float c[]; };
layout(binding = 1) uniform samplerBuffer At;
layout(binding = 2) uniform samplerBuffer Bt;

vec4 keep(vec4 v, uint p, uint k)
{
    // Components at k-index p, p+1, p+2, p+3 that are >= k are padding (or clamped reads).
    return vec4(p < k ? v.x : 0.0, p + 1 < k ? v.y : 0.0, p + 2 < k ? v.z : 0.0, p + 3 < k ? v.w : 0.0);
}

void main()
{
    uint m = pc.p[0], n = pc.p[1], k = pc.p[2];
    uint lda = pc.p[3], ldb = pc.p[4], ldc = pc.p[5];
    uint z = gl_WorkGroupID.z;
    uint abase = pc.base[1] + z * (pc.p[6] / 4), bbase = pc.base[2] + z * (pc.p[7] / 4);
    uint cbase = pc.base[0] + z * pc.p[8];
    uint lane = gl_SubgroupInvocationID;
    uint i0 = gl_WorkGroupID.y * R;
    uint j = (gl_WorkGroupID.x * NSG + gl_SubgroupID) * SG * 4 + lane * 4;
    uint n4 = (n + 3) & ~3u, m4 = (m + 3) & ~3u;
    uint jl = min(j, n4 - 4); // a lane past the last column group reads a valid one
    vec4 acc[R];
    [[unroll]] for (uint r = 0; r < R; r++) acc[r] = vec4(0.0);
    for (uint p = 0; p < k; p += 4) {
        // bk[q] = op(B)[p + q, jl .. jl + 3]
        vec4 bk[4];
#ifdef TRANS_B
        vec4 bt[4]; // bt[cc] = B[jl + cc, p .. p + 3]
        [[unroll]] for (uint cc = 0; cc < 4; cc++)
            bt[cc] = keep(texelFetch(Bt, int(bbase + (min(jl + cc, n - 1) * ldb + p) / 4)), p, k);
        [[unroll]] for (uint q = 0; q < 4; q++) bk[q] = vec4(bt[0][q], bt[1][q], bt[2][q], bt[3][q]);
#else
        [[unroll]] for (uint q = 0; q < 4; q++) {
            vec4 v = texelFetch(Bt, int(bbase + (min(p + q, k - 1) * ldb + jl) / 4));
            bk[q] = p + q < k ? v : vec4(0.0);
        }
#endif
        [[unroll]] for (uint s = 0; s < R / SG; s++) {
#ifdef TRANS_A
            // Lane l loads A^T[p + l % 4, i0 + s*SG + 4*(l/4) .. +3]: SG rows x 4 k per fetch.
            uint q = lane & 3u, g = lane >> 2;
            uint col = min(i0 + s * SG + 4 * g, m4 - 4);
            vec4 av = texelFetch(At, int(abase + (min(p + q, k - 1) * lda + col) / 4));
            if (p + q >= k) av = vec4(0.0);
            [[unroll]] for (uint gg = 0; gg < SG / 4; gg++) {
                vec4 x0 = subgroupShuffle(av, 4 * gg + 0), x1 = subgroupShuffle(av, 4 * gg + 1);
                vec4 x2 = subgroupShuffle(av, 4 * gg + 2), x3 = subgroupShuffle(av, 4 * gg + 3);
                [[unroll]] for (uint e = 0; e < 4; e++)
                    acc[s * SG + 4 * gg + e] += x0[e] * bk[0] + x1[e] * bk[1] + x2[e] * bk[2] + x3[e] * bk[3];
            }
#else
            // Lane l loads A[i0 + s*SG + l, p .. p + 3].
            vec4 av = keep(texelFetch(At, int(abase + (min(i0 + s * SG + lane, m - 1) * lda + p) / 4)), p, k);
            [[unroll]] for (uint r = 0; r < SG; r++) {
                vec4 ar = subgroupShuffle(av, r);
                acc[s * SG + r] += ar.x * bk[0] + ar.y * bk[1] + ar.z * bk[2] + ar.w * bk[3];
            }
#endif
        }
    }
    if (j >= n) return;
    float alpha = pf(9), beta = pf(10);
    [[unroll]] for (uint r = 0; r < R; r++) {
        uint i = i0 + r;
        if (i >= m) break;
        uint ci = cbase + i * ldc + j;
        [[unroll]] for (uint e = 0; e < 4; e++) {
            if (j + e < n) {
                float v = alpha * acc[r][e];
                if (beta != 0.0) v += beta * c[ci + e];
                c[ci + e] = v;
            }
        }
    }
}
