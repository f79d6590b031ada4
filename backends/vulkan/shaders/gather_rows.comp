#version 450
// out[i, :] = table[ids[i], :] for the ids that fall in this window of the table.
// p[0] dim, p[1] first table row of the window, p[2] rows in the window, p[3] table rows,
// p[4] check ids (first window only). Table dtype: T_F32, T_F16 or T_BF16.
#define ERR_BINDING 3
#include "common.glsl"
#if defined(T_F16) || defined(T_BF16)
#extension GL_EXT_shader_16bit_storage : require
#endif
layout(std430, binding = 0) buffer Out { float o[]; };
#if defined(T_F16)
layout(std430, binding = 1) readonly buffer Table { float16_t t[]; };
float load(uint i) { return float(t[i]); }
#elif defined(T_BF16)
layout(std430, binding = 1) readonly buffer Table { uint16_t t[]; };
float load(uint i) { return bf16_bits_to_f32(uint(t[i])); }
#else
layout(std430, binding = 1) readonly buffer Table { float t[]; };
float load(uint i) { return t[i]; }
#endif
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };
void main()
{
    uint i = global_index();
    uint dim = pc.p[0];
    if (i >= pc.nrows * dim) return;
    uint r = i / dim, j = i % dim;
    int id = ids[pc.base[2] + r];
    if (id < 0 || uint(id) >= pc.p[3]) {
        if (pc.p[4] != 0u && j == 0u) report(1u, pc.row0 + r, id, pc.p[3]);
        return;
    }
    uint local = uint(id) - pc.p[1];
    if (uint(id) < pc.p[1] || local >= pc.p[2]) return;
    o[pc.base[0] + i] = load(pc.base[1] + local * dim + j);
}
