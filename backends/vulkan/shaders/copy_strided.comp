#version 450
// dst[idx] (+)= src[idx] over an index space of p[0] dims: p[2..7] shape, p[8..13] dst strides,
// p[14..19] src strides (signed, elements); base[0]/base[1] locate index 0 in each window,
// p[1] accumulate. Variants: E32 (F32/I32 bits; ACC_F32 or ACC_I32), E16 (F16/BF16; ACC_F16 or
// ACC_BF16), E8 (U8; ACC_U8), E64 (I64/F64 as uvec2; ACC_I64 or ACC_F64), and the converting
// SRC_F16 / SRC_BF16 into F32.
#include "common.glsl"
#if defined(E16) || defined(SRC_F16) || defined(SRC_BF16)
#extension GL_EXT_shader_16bit_storage : require
#endif
#ifdef E8
#extension GL_EXT_shader_8bit_storage : require
#endif
#if defined(E16)
#define DST_T uint16_t
#define SRC_T uint16_t
#elif defined(E8)
#define DST_T uint8_t
#define SRC_T uint8_t
#elif defined(E64)
#define DST_T uvec2
#define SRC_T uvec2
#elif defined(SRC_F16) || defined(SRC_BF16)
#define DST_T float
#define SRC_T uint16_t
#else
#define DST_T uint
#define SRC_T uint
#endif
layout(std430, binding = 0) buffer Dst { DST_T d[]; };
layout(std430, binding = 1) readonly buffer Src { SRC_T s[]; };

// The new value of d[di] given the source element; 8/16-bit elements travel as uint (only
// storage may hold them without the explicit arithmetic types).
#if defined(SRC_F16) || defined(SRC_BF16)
float combine(uint di, uint v, bool acc)
{
#ifdef SRC_F16
    float f = f16_bits_to_f32(v);
#else
    float f = bf16_bits_to_f32(v);
#endif
    return acc ? d[di] + f : f;
}
#elif defined(E16) || defined(E8)
uint combine(uint di, uint v, bool acc)
{
    if (!acc) return v;
    uint o = uint(d[di]);
#if defined(ACC_F16)
    return f32_to_f16_bits(f16_bits_to_f32(o) + f16_bits_to_f32(v));
#elif defined(ACC_BF16)
    return f32_to_bf16_bits(bf16_bits_to_f32(o) + bf16_bits_to_f32(v));
#else
    return (o + v) & 255u;
#endif
}
#else
DST_T combine(uint di, SRC_T v, bool acc)
{
    if (!acc) return v;
    DST_T o = d[di];
#if defined(ACC_F32)
    return floatBitsToUint(uintBitsToFloat(o) + uintBitsToFloat(v));
#elif defined(ACC_I32)
    return o + v;
#elif defined(ACC_I64)
    uint lo = o.x + v.x;
    return uvec2(lo, o.y + v.y + (lo < o.x ? 1u : 0u));
#elif defined(ACC_F64)
    return unpackDouble2x32(packDouble2x32(o) + packDouble2x32(v));
#else
    return v;
#endif
}
#endif

void main()
{
    uint nd = pc.p[0];
    uint n = 1;
    for (uint k = 0; k < nd; k++) n *= pc.p[2 + k];
    uint i = global_index();
    if (i >= n) return;
    int di = int(pc.base[0]), si = int(pc.base[1]);
    uint rem = i;
    for (int k = int(nd) - 1; k >= 0; k--) {
        uint e = pc.p[2 + k];
        int q = int(rem % e);
        rem /= e;
        di += q * pi(8 + k);
        si += q * pi(14 + k);
    }
#if defined(SRC_F16) || defined(SRC_BF16) || defined(E16) || defined(E8)
    d[uint(di)] = DST_T(combine(uint(di), uint(s[uint(si)]), pc.p[1] != 0u));
#else
    d[uint(di)] = combine(uint(di), s[uint(si)], pc.p[1] != 0u);
#endif
}
