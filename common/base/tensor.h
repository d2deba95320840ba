/* Tensors: a dtype, a shape and a pointer to data.
 *
 * An aim_tensor never owns its name or data by itself; ownership belongs to
 * the container that holds it (an aim_record, a model arena). That keeps a
 * tensor cheap to copy and lets a record point straight into an mmap. */
#ifndef AIM_TENSOR_H
#define AIM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define AIM_MAX_DIMS 8

typedef enum {
	AIM_F32,
	AIM_F16,
	AIM_BF16,
	AIM_U8,
	AIM_I64,
	AIM_I32,
	AIM_DTYPE_COUNT,
	AIM_DTYPE_INVALID = -1
} aim_dtype;

typedef struct {
	char *name;
	aim_dtype dtype;
	int ndim;
	int64_t shape[AIM_MAX_DIMS];
	void *data;
	size_t nbytes;
} aim_tensor;

size_t aim_dtype_size(aim_dtype t);
const char *aim_dtype_name(aim_dtype t);       /* "F32", ... (safetensors) */
aim_dtype aim_dtype_parse(const char *s);       /* AIM_DTYPE_INVALID if unknown */
aim_dtype aim_dtype_parse_lower(const char *s); /* "f32", "f16", "bf16" (CLI) */

/* Number of elements (product of the shape); -1 on overflow. */
int64_t aim_shape_numel(int ndim, const int64_t *shape);
int64_t aim_tensor_numel(const aim_tensor *t);
/* "[2, 3, 4]" into buf, for messages. */
const char *aim_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* Scalar conversions (round-to-nearest-even, NaN preserved). */
float aim_f16_to_f32(uint16_t h);
uint16_t aim_f32_to_f16(float f);
float aim_bf16_to_f32(uint16_t h);
uint16_t aim_f32_to_bf16(float f);

/* Convert n elements between dtypes. Integer <-> float conversions are
 * allowed (float -> integer truncates toward zero). */
void aim_convert(void *dst, aim_dtype dt, const void *src, aim_dtype st, size_t n);
/* Convenience: copy a tensor of any dtype into n floats. */
void aim_to_f32(float *dst, const aim_tensor *t);

#endif
