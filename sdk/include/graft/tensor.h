/* graft — tensors as every layer sees them.
 *
 * A tensor is a contiguous, row-major view into a backend buffer. Backends read only the
 * public fields (dtype, ndim, shape, buffer, offset); the core keeps its autodiff and
 * ownership bookkeeping behind `priv`. Shapes have at most GR_MAX_DIMS dimensions; a
 * 0-dimensional tensor is a scalar with one element. */
#ifndef GRAFT_TENSOR_H
#define GRAFT_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GR_MAX_DIMS 6

typedef enum gr_dtype {
    GR_F32 = 0,
    GR_F16 = 1,
    GR_BF16 = 2,
    GR_I32 = 3,
    GR_I64 = 4,
    GR_F64 = 5,
    GR_U8 = 6,
    GR_DTYPE_COUNT
} gr_dtype;

/* A block of device memory, owned and defined by one backend. */
typedef struct gr_buffer gr_buffer;

/* Core-private bookkeeping (storage refcount, tape links, gradient). */
typedef struct gr_tensor_priv gr_tensor_priv;

typedef struct gr_tensor {
    gr_dtype dtype;
    int ndim;
    int64_t shape[GR_MAX_DIMS];
    gr_buffer *buffer;
    size_t offset;          /* bytes from the start of `buffer` */
    const char *name;       /* parameter name (HF naming) or NULL for activations */
    gr_tensor_priv *priv;   /* owned by the core; backends must not touch it */
} gr_tensor;

size_t gr_dtype_size(gr_dtype dt);
const char *gr_dtype_name(gr_dtype dt);
/* Parses "F32", "F16", "BF16", "I32", "I64", "F64", "U8" (safetensors spelling); -1 if unknown. */
int gr_dtype_parse(const char *s);

int64_t gr_numel(const gr_tensor *t);
size_t gr_nbytes(const gr_tensor *t);
/* Formats a shape as "[2, 10, 64]" into buf; returns buf. */
const char *gr_shape_str(const gr_tensor *t, char *buf, size_t cap);

/* Host-side scalar conversions (exact IEEE semantics, round-to-nearest-even for narrowing). */
float gr_f16_to_f32(uint16_t h);
float gr_bf16_to_f32(uint16_t b);
uint16_t gr_f32_to_f16(float f);
uint16_t gr_f32_to_bf16(float f);
/* Converts `n` elements of `src` (any float or integer dtype) to float32. */
void gr_convert_to_f32(float *dst, const void *src, gr_dtype src_dtype, size_t n);

#ifdef __cplusplus
}
#endif
#endif
