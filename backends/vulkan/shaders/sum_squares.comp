#version 450
// Stage 1: partial sums of x^2 over a strided share of the chunk, one per workgroup, into
// part[p[0] + group]. Stage 2 (FINAL): one workgroup sums p[1] partials into out[0].
// ACC is double when the device has shaderFloat64, else float (Kahan-compensated per thread).
#include "common.glsl"
#ifdef USE_DOUBLE
#define ACC double
#else
#define ACC float
#endif
shared ACC acc[WG];
#ifdef FINAL
layout(std430, binding = 0) buffer Out { float o[]; };
layout(std430, binding = 1) readonly buffer Part { ACC part[]; };
#else
layout(std430, binding = 0) buffer Part { ACC part[]; };
layout(std430, binding = 1) readonly buffer In { float x[]; };
#endif
void main()
{
    uint l = gl_LocalInvocationID.x;
    precise ACC s = ACC(0), comp = ACC(0);
#ifdef FINAL
    for (uint i = l; i < pc.p[1]; i += WG) {
        precise ACC y = part[pc.base[1] + i] - comp;
#else
    uint groups = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint i = global_index(); i < pc.nrows; i += groups * WG) {
        float v = x[pc.base[1] + i];
        precise ACC y = ACC(v) * ACC(v) - comp;
#endif
        precise ACC t = s + y;
        comp = (t - s) - y;
        s = t;
    }
    acc[l] = s;
    barrier();
    for (uint k = WG / 2; k > 0; k >>= 1) {
        if (l < k) acc[l] += acc[l + k];
        barrier();
    }
    if (l == 0) {
#ifdef FINAL
        o[pc.base[0]] = float(acc[0]);
#else
        part[pc.base[0] + pc.p[0] + group_index()] = acc[0];
#endif
    }
}
