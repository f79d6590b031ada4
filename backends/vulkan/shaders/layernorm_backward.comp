#version 450
// dx for one row per workgroup: g = dy * w, xhat = (x - mean) * rstd,
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). p[0] d, p[1] has w.
#define WG_REDUCE
#include "common.glsl"
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) readonly buffer Mean { float mean[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint d = pc.p[0], l = gl_LocalInvocationID.x;
    uint o = r * d;
    float mu = mean[pc.base[4] + r], rs = rstd[pc.base[5] + r];
    float sg = 0.0, sgx = 0.0;
    for (uint j = l; j < d; j += WG) {
        float g = dy[pc.base[1] + o + j] * (pc.p[1] != 0u ? w[pc.base[3] + j] : 1.0);
        float xh = (x[pc.base[2] + o + j] - mu) * rs;
        sg += g;
        sgx += g * xh;
    }
    float mg = wg_sum(sg) / float(d);
    float mgx = wg_sum(sgx) / float(d);
    for (uint j = l; j < d; j += WG) {
        float g = dy[pc.base[1] + o + j] * (pc.p[1] != 0u ? w[pc.base[3] + j] : 1.0);
        float xh = (x[pc.base[2] + o + j] - mu) * rs;
        dx[pc.base[0] + o + j] = rs * (g - mg - xh * mgx);
    }
}
