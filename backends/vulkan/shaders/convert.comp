#version 450
// Element-wise dtype conversion. SRC_F32/F16/BF16/I64 into DST_F32/F16/BF16/I32; narrowing
// rounds to nearest even exactly as the host conversions do; I64 -> I32 keeps the low word.
#include "common.glsl"
#if defined(SRC_F16) || defined(SRC_BF16) || defined(DST_F16) || defined(DST_BF16)
#extension GL_EXT_shader_16bit_storage : require
#endif
#if defined(DST_F16) || defined(DST_BF16)
layout(std430, binding = 0) buffer Out { uint16_t o[]; };
#elif defined(DST_I32)
layout(std430, binding = 0) buffer Out { int o[]; };
#else
layout(std430, binding = 0) buffer Out { float o[]; };
#endif
#if defined(SRC_F16) || defined(SRC_BF16)
layout(std430, binding = 1) readonly buffer In { uint16_t x[]; };
#elif defined(SRC_I64)
layout(std430, binding = 1) readonly buffer In { uvec2 x[]; };
#else
layout(std430, binding = 1) readonly buffer In { float x[]; };
#endif
void main()
{
    uint i = global_index();
    if (i >= pc.nrows) return;
#if defined(SRC_I64)
    o[pc.base[0] + i] = int(x[pc.base[1] + i].x);
#else
#if defined(SRC_F16)
    float f = f16_bits_to_f32(uint(x[pc.base[1] + i]));
#elif defined(SRC_BF16)
    float f = bf16_bits_to_f32(uint(x[pc.base[1] + i]));
#else
    float f = x[pc.base[1] + i];
#endif
#if defined(DST_F16)
    o[pc.base[0] + i] = uint16_t(f32_to_f16_bits(f));
#elif defined(DST_BF16)
    o[pc.base[0] + i] = uint16_t(f32_to_bf16_bits(f));
#else
    o[pc.base[0] + i] = f;
#endif
#endif
}
