#version 450
// out = alpha * in (+ out when p[1]); one invocation per element.
#include "common.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer In { float x[]; };
void main()
{
    uint i = global_index();
    if (i >= pc.nrows) return;
    precise float v = pf(0) * x[pc.base[1] + i];
    if (pc.p[1] != 0u) v += o[pc.base[0] + i];
    o[pc.base[0] + i] = v;
}
