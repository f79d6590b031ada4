#version 450
// out = f(in) for the activation p[0]; one invocation per element.
#include "common.glsl"
#include "activations.glsl"
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer In { float x[]; };
void main()
{
    uint i = global_index();
    if (i >= pc.nrows) return;
    o[pc.base[0] + i] = act_forward(pc.p[0], x[pc.base[1] + i]);
}
