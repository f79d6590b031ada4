#version 450
// One workgroup per row: rstd = 1 / sqrt(mean(x^2) + eps), out = x * rstd * w.
// p[0] d, p[1] has w, p[2] eps.
#define WG_REDUCE
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) buffer Rstd { float rstd_out[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint d = pc.p[0], l = gl_LocalInvocationID.x;
    uint xo = pc.base[2] + r * d;
    float s = 0.0;
    for (uint j = l; j < d; j += WG) { float v = x[xo + j]; s += v * v; }
    float rstd = 1.0 / sqrt(wg_sum(s) / float(d) + pf(2));
    for (uint j = l; j < d; j += WG) {
        float y = x[xo + j] * rstd;
        if (pc.p[1] != 0u) y *= w[pc.base[3] + j];
        o[pc.base[0] + r * d + j] = y;
    }
    if (l == 0) rstd_out[pc.base[1] + r] = rstd;
}
