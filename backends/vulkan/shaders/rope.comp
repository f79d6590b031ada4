#version 450
// Rotary embedding, rotate-half pairing. Rows are (b, t); one invocation per element of
// [H, D] in a row; the invocation of element e < half writes the pair (e, e + half), so
// out may alias x. p[0] H, p[1] D, p[2] rot_dim, p[3] inverse.
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Cos { float cs[]; };
layout(std430, binding = 3) readonly buffer Sin { float sn[]; };
void main()
{
    uint i = global_index();
    uint H = pc.p[0], D = pc.p[1], rot = pc.p[2], half_ = rot / 2;
    if (i >= pc.nrows * H * D) return;
    uint r = i / (H * D), e = i % D;
    uint xi = pc.base[1] + i, oi = pc.base[0] + i;
    if (e >= rot) { o[oi] = x[xi]; return; }
    if (e >= half_) return;
    float c = cs[pc.base[2] + r * half_ + e];
    float s = sn[pc.base[3] + r * half_ + e];
    if (pc.p[3] != 0u) s = -s;
    float a = x[xi], b = x[xi + half_];
    o[oi] = a * c - b * s;
    o[oi + half_] = b * c + a * s;
}
