#version 450
// One workgroup per row: mean, then the biased variance around it (two passes), then
// out = (x - mean) * rstd * w + b. p[0] d, p[1] has w, p[2] has b, p[3] eps.
#define WG_REDUCE
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) buffer Mean { float mean_out[]; };
layout(std430, binding = 2) buffer Rstd { float rstd_out[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };
layout(std430, binding = 4) readonly buffer W { float w[]; };
layout(std430, binding = 5) readonly buffer B { float b[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint d = pc.p[0], l = gl_LocalInvocationID.x;
    uint xo = pc.base[3] + r * d;
    float s = 0.0;
    for (uint j = l; j < d; j += WG) s += x[xo + j];
    float mean = wg_sum(s) / float(d);
    float v = 0.0;
    for (uint j = l; j < d; j += WG) { float c = x[xo + j] - mean; v += c * c; }
    float rstd = 1.0 / sqrt(wg_sum(v) / float(d) + pf(3));
    for (uint j = l; j < d; j += WG) {
        float y = (x[xo + j] - mean) * rstd;
        if (pc.p[1] != 0u) y *= w[pc.base[4] + j];
        if (pc.p[2] != 0u) y += b[pc.base[5] + j];
        o[pc.base[0] + r * d + j] = y;
    }
    if (l == 0) {
        mean_out[pc.base[1] + r] = mean;
        rstd_out[pc.base[2] + r] = rstd;
    }
}
