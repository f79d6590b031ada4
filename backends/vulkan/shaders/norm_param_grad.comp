#version 450
// Parameter gradients of layernorm (dw = sum dy * xhat, db = sum dy) or, with RMS, of rmsnorm
// (dw = sum dy * x * rstd): one invocation per column walks the rows of this chunk in order.
// p[0] d, p[1] accumulate (chunks after the first), p[2] want dw, p[3] want db.
#include "common.glsl"
layout(std430, binding = 0) buffer DW { float dw[]; };
#ifdef RMS
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer Rstd { float rstd[]; };
#else
layout(std430, binding = 1) buffer DB { float db[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };
layout(std430, binding = 4) readonly buffer Mean { float mean[]; };
layout(std430, binding = 5) readonly buffer Rstd { float rstd[]; };
#endif
void main()
{
    uint j = global_index();
    uint d = pc.p[0];
    if (j >= d) return;
    float sw = 0.0, sb = 0.0;
#ifdef RMS
    for (uint r = 0; r < pc.nrows; r++)
        sw += dy[pc.base[1] + r * d + j] * (x[pc.base[2] + r * d + j] * rstd[pc.base[3] + r]);
#else
    for (uint r = 0; r < pc.nrows; r++) {
        float g = dy[pc.base[2] + r * d + j];
        sw += g * ((x[pc.base[3] + r * d + j] - mean[pc.base[4] + r]) * rstd[pc.base[5] + r]);
        sb += g;
    }
#endif
    if (pc.p[2] != 0u) dw[pc.base[0] + j] = (pc.p[1] != 0u ? dw[pc.base[0] + j] : 0.0) + sw;
#ifndef RMS
    if (pc.p[3] != 0u) db[pc.base[1] + j] = (pc.p[1] != 0u ? db[pc.base[1] + j] : 0.0) + sb;
#endif
}
