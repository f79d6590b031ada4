#version 450
// out = a OP b with broadcasting. p[0] ndim, p[1] op (0 add, 1 sub, 2 mul), p[2..7] out shape
// (dim 0 = rows of this chunk), p[8..13] a strides, p[14..19] b strides (0 where broadcast).
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
void main()
{
    uint i = global_index();
    uint nd = pc.p[0];
    uint n = pc.nrows;
    for (uint d = 1; d < nd; d++) n *= pc.p[2 + d];
    if (i >= n) return;
    uint ia = 0, ib = 0, rem = i;
    for (int d = int(nd) - 1; d >= 0; d--) {
        uint extent = d == 0 ? pc.nrows : pc.p[2 + d];
        uint k = rem % extent;
        rem /= extent;
        ia += k * pc.p[8 + d];
        ib += k * pc.p[14 + d];
    }
    float x = a[pc.base[1] + ia], y = b[pc.base[2] + ib];
    float r = pc.p[1] == 0u ? x + y : pc.p[1] == 1u ? x - y : x * y;
    o[pc.base[0] + i] = r;
}
