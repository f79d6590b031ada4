#version 450
// Row softmax, one workgroup per row: max-subtracted. A fully masked row (-FLT_MAX
// everywhere) gets uniform weights; nothing special-cases infinities. p[0] n.
#define WG_REDUCE
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer In { float x[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint n = pc.p[0], l = gl_LocalInvocationID.x;
    uint xo = pc.base[1] + r * n, oo = pc.base[0] + r * n;
    float m = -3.402823466e38;
    for (uint j = l; j < n; j += WG) m = max(m, x[xo + j]);
    m = wg_max(m);
    float s = 0.0;
    for (uint j = l; j < n; j += WG) s += exp(x[xo + j] - m);
    float inv = 1.0 / wg_sum(s);
    for (uint j = l; j < n; j += WG) o[oo + j] = exp(x[xo + j] - m) * inv;
}
