#version 450
// dx = y * (dy - sum(dy * y)) per row, one workgroup per row. p[0] n.
#define WG_REDUCE
#include "common.glsl"
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint n = pc.p[0], l = gl_LocalInvocationID.x;
    uint o = r * n;
    float s = 0.0;
    for (uint j = l; j < n; j += WG) s += dy[pc.base[2] + o + j] * y[pc.base[1] + o + j];
    float dot = wg_sum(s);
    for (uint j = l; j < n; j += WG)
        dx[pc.base[0] + o + j] = y[pc.base[1] + o + j] * (dy[pc.base[2] + o + j] - dot);
}
