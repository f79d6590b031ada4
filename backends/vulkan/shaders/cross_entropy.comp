#version 450
// One workgroup per row. Forward: loss = logsumexp(logits) - logits[label]; backward (BWD):
// dlogits = scale * (softmax - onehot). Rows whose label is ignore_index get 0.
// p[0] v, p[1] ignore_index, p[2] scale (BWD), p[3] check labels.
#define WG_REDUCE
#define ERR_BINDING 3
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer Logits { float x[]; };
layout(std430, binding = 2) readonly buffer Labels { int labels[]; };
void main()
{
    uint r = group_index();
    if (r >= pc.nrows) return;
    uint v = pc.p[0], l = gl_LocalInvocationID.x;
    uint xo = pc.base[1] + r * v;
    int label = labels[pc.base[2] + r];
    bool ignored = label == pi(1);
    bool bad = !ignored && (label < 0 || uint(label) >= v);
    if (bad && l == 0u && pc.p[3] != 0u)
#ifdef BWD
        report(4u, pc.row0 + r, label, v);
#else
        report(3u, pc.row0 + r, label, v);
#endif
#ifdef BWD
    uint oo = pc.base[0] + r * v;
    if (ignored || bad) {
        for (uint j = l; j < v; j += WG) o[oo + j] = 0.0;
        return;
    }
#else
    if (ignored || bad) {
        if (l == 0u) o[pc.base[0] + r] = 0.0;
        return;
    }
#endif
    float m = -3.402823466e38;
    for (uint j = l; j < v; j += WG) m = max(m, x[xo + j]);
    m = wg_max(m);
    float s = 0.0;
    for (uint j = l; j < v; j += WG) s += exp(x[xo + j] - m);
    s = wg_sum(s);
#ifdef BWD
    float inv = 1.0 / s, scale = pf(2);
    for (uint j = l; j < v; j += WG) {
        float p = exp(x[xo + j] - m) * inv;
        o[oo + j] = scale * (j == uint(label) ? p - 1.0 : p);
    }
#else
    if (l == 0u) o[pc.base[0] + r] = m + log(s) - x[xo + uint(label)];
#endif
}
