#version 450
// dx for one row per workgroup: g = dy * w, xhat = x * rstd, dx = rstd * (g - xhat * mean(g * xhat)).
// p[0] d, p[1] has w.
#define WG_REDUCE
#include "common.glsl"
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) readonly buffer Rstd { float rstd[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint d = pc.p[0], l = gl_LocalInvocationID.x;
    uint o = r * d;
    float rs = rstd[pc.base[4] + r];
    float sgx = 0.0;
    for (uint j = l; j < d; j += WG) {
        float g = dy[pc.base[1] + o + j] * (pc.p[1] != 0u ? w[pc.base[3] + j] : 1.0);
        sgx += g * x[pc.base[2] + o + j] * rs;
    }
    float mgx = wg_sum(sgx) / float(d);
    for (uint j = l; j < d; j += WG) {
        float g = dy[pc.base[1] + o + j] * (pc.p[1] != 0u ? w[pc.base[3] + j] : 1.0);
        dx[pc.base[0] + o + j] = rs * (g - x[pc.base[2] + o + j] * rs * mgx);
    }
}
