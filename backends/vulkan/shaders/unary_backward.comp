#version 450
// dx = dy * f'(x) for the activation p[0].
#include "common.glsl"
#include "activations.glsl"
layout(std430, binding = 0) buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
void main()
{
    uint i = global_index();
    if (i >= pc.nrows) return;
    dx[pc.base[0] + i] = dy[pc.base[2] + i] * act_derivative(pc.p[0], x[pc.base[1] + i]);
}
