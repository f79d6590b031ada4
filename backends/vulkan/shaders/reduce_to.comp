#version 450
// out = sum of in over the dims where out has size 1 (Kahan-compensated). One invocation per
// output element. p[0] ndim, p[1] accumulate, p[2..7] in shape (dim 0 = rows of this chunk of
// in), p[8..13] 1 where the dim is reduced.
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer In { float x[]; };
uint extent(uint d) { return d == 0u ? pc.nrows : pc.p[2 + d]; }
void main()
{
    uint nd = pc.p[0];
    uint nout = 1, nred = 1;
    for (uint d = 0; d < nd; d++) {
        if (pc.p[8 + d] != 0u) nred *= extent(d);
        else nout *= extent(d);
    }
    uint i = global_index();
    if (i >= nout) return;
    // Input offset of this output element (kept dims), in row-major strides of `in`.
    uint off = 0, rem = i, stride = 1;
    uint strides[6];
    for (int d = int(nd) - 1; d >= 0; d--) {
        strides[d] = stride;
        stride *= extent(uint(d));
    }
    for (int d = int(nd) - 1; d >= 0; d--) {
        if (pc.p[8 + d] != 0u) continue;
        uint e = extent(uint(d));
        off += (rem % e) * strides[d];
        rem /= e;
    }
    precise float sum = 0.0, comp = 0.0;
    for (uint r = 0; r < nred; r++) {
        uint idx = off, q = r;
        for (int d = int(nd) - 1; d >= 0; d--) {
            if (pc.p[8 + d] == 0u) continue;
            uint e = extent(uint(d));
            idx += (q % e) * strides[d];
            q /= e;
        }
        precise float y = x[pc.base[1] + idx] - comp;
        precise float t = sum + y;
        comp = (t - sum) - y;
        sum = t;
    }
    if (pc.p[1] != 0u) sum += o[pc.base[0] + i];
    o[pc.base[0] + i] = sum;
}
