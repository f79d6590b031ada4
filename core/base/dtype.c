/* dtype sizes, names and exact host-side float conversions. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graft/tensor.h"

static const struct { const char *name; size_t size; } dtype_table[GR_DTYPE_COUNT] = {
    [GR_F32] = {"F32", 4}, [GR_F16] = {"F16", 2}, [GR_BF16] = {"BF16", 2},
    [GR_I32] = {"I32", 4}, [GR_I64] = {"I64", 8}, [GR_F64] = {"F64", 8}, [GR_U8] = {"U8", 1},
};

size_t gr_dtype_size(gr_dtype dt) { return (unsigned)dt < GR_DTYPE_COUNT ? dtype_table[dt].size : 0; }

const char *gr_dtype_name(gr_dtype dt)
{
    return (unsigned)dt < GR_DTYPE_COUNT ? dtype_table[dt].name : "?";
}

int gr_dtype_parse(const char *s)
{
    for (int i = 0; i < GR_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_table[i].name) == 0) return i;
    return -1;
}

int64_t gr_numel(const gr_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t gr_nbytes(const gr_tensor *t) { return (size_t)gr_numel(t) * gr_dtype_size(t->dtype); }

const char *gr_shape_str(const gr_tensor *t, char *buf, size_t cap)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float gr_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t gr_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float gr_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 (exact in float32) */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t gr_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* subnormal half: round(|f| / 2^-24) to nearest even */
        float v = bits_f32(a) * 16777216.0f;
        float r = nearbyintf(v);
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t mant = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u;
    return (uint16_t)(sign | (uint16_t)(mant >> 13));
}

void gr_convert_to_f32(float *dst, const void *src, gr_dtype dt, size_t n)
{
    switch (dt) {
    case GR_F32: memcpy(dst, src, n * 4); break;
    case GR_F16: for (size_t i = 0; i < n; i++) dst[i] = gr_f16_to_f32(((const uint16_t *)src)[i]); break;
    case GR_BF16: for (size_t i = 0; i < n; i++) dst[i] = gr_bf16_to_f32(((const uint16_t *)src)[i]); break;
    case GR_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    case GR_I64: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)src)[i]; break;
    case GR_F64: for (size_t i = 0; i < n; i++) dst[i] = (float)((const double *)src)[i]; break;
    case GR_U8: for (size_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i]; break;
    default: break;
    }
}
