#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name, *lower;
	size_t size;
} dtypes[AIM_DTYPE_COUNT] = {
	[AIM_F32] = {"F32", "f32", 4},   [AIM_F16] = {"F16", "f16", 2},
	[AIM_BF16] = {"BF16", "bf16", 2}, [AIM_U8] = {"U8", "u8", 1},
	[AIM_I64] = {"I64", "i64", 8},   [AIM_I32] = {"I32", "i32", 4},
};

size_t aim_dtype_size(aim_dtype t) { return t >= 0 && t < AIM_DTYPE_COUNT ? dtypes[t].size : 0; }
const char *aim_dtype_name(aim_dtype t) { return t >= 0 && t < AIM_DTYPE_COUNT ? dtypes[t].name : "?"; }

aim_dtype aim_dtype_parse(const char *s)
{
	for (int i = 0; i < AIM_DTYPE_COUNT; i++)
		if (!strcmp(s, dtypes[i].name))
			return (aim_dtype)i;
	return AIM_DTYPE_INVALID;
}

aim_dtype aim_dtype_parse_lower(const char *s)
{
	for (int i = 0; i < AIM_DTYPE_COUNT; i++)
		if (!strcasecmp(s, dtypes[i].lower))
			return (aim_dtype)i;
	return AIM_DTYPE_INVALID;
}

int64_t aim_shape_numel(int ndim, const int64_t *shape)
{
	int64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return -1;
		if (shape[i] && n > INT64_MAX / shape[i])
			return -1;
		n *= shape[i];
	}
	return n;
}

int64_t aim_tensor_numel(const aim_tensor *t) { return aim_shape_numel(t->ndim, t->shape); }

const char *aim_shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
	size_t off = 0;
	off += snprintf(buf + off, n - off, "[");
	for (int i = 0; i < ndim && off < n; i++)
		off += snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)shape[i]);
	if (off < n)
		snprintf(buf + off, n - off, "]");
	return buf;
}

/* IEEE half <-> single, round to nearest even. */
float aim_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | (man << 13);
	} else if (exp == 0) {
		if (!man) {
			bits = sign;
		} else { /* subnormal: normalise */
			int e = -1;
			do {
				e++;
				man <<= 1;
			} while (!(man & 0x400));
			bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
		}
	} else {
		bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t aim_f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	int32_t exp = (int32_t)((x >> 23) & 0xff);
	uint32_t man = x & 0x7fffff;
	if (exp == 0xff) /* inf / nan (keep a quiet nan) */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	int32_t e = exp - 127 + 15;
	if (e >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - e);
		uint32_t half = man >> shift;
		uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13);
	uint32_t rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* may carry into the exponent, which is correct */
	return (uint16_t)h;
}

float aim_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t aim_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

static double load(const void *p, aim_dtype t, size_t i)
{
	switch (t) {
	case AIM_F32: return ((const float *)p)[i];
	case AIM_F16: return aim_f16_to_f32(((const uint16_t *)p)[i]);
	case AIM_BF16: return aim_bf16_to_f32(((const uint16_t *)p)[i]);
	case AIM_U8: return ((const uint8_t *)p)[i];
	case AIM_I64: return (double)((const int64_t *)p)[i];
	case AIM_I32: return ((const int32_t *)p)[i];
	default: return 0;
	}
}

static void store(void *p, aim_dtype t, size_t i, double v)
{
	switch (t) {
	case AIM_F32: ((float *)p)[i] = (float)v; break;
	case AIM_F16: ((uint16_t *)p)[i] = aim_f32_to_f16((float)v); break;
	case AIM_BF16: ((uint16_t *)p)[i] = aim_f32_to_bf16((float)v); break;
	case AIM_U8: ((uint8_t *)p)[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); break;
	case AIM_I64: ((int64_t *)p)[i] = isfinite(v) ? (int64_t)v : 0; break;
	case AIM_I32: ((int32_t *)p)[i] = isfinite(v) && fabs(v) < 2147483648.0 ? (int32_t)v : 0; break;
	default: break;
	}
}

void aim_convert(void *dst, aim_dtype dt, const void *src, aim_dtype st, size_t n)
{
	if (dt == st) {
		memcpy(dst, src, n * aim_dtype_size(dt));
		return;
	}
	/* Fast paths for the conversions on hot paths. */
	if (dt == AIM_F32 && st == AIM_F16) {
		for (size_t i = 0; i < n; i++)
			((float *)dst)[i] = aim_f16_to_f32(((const uint16_t *)src)[i]);
	} else if (dt == AIM_F32 && st == AIM_BF16) {
		for (size_t i = 0; i < n; i++)
			((float *)dst)[i] = aim_bf16_to_f32(((const uint16_t *)src)[i]);
	} else if (dt == AIM_F16 && st == AIM_F32) {
		for (size_t i = 0; i < n; i++)
			((uint16_t *)dst)[i] = aim_f32_to_f16(((const float *)src)[i]);
	} else if (dt == AIM_BF16 && st == AIM_F32) {
		for (size_t i = 0; i < n; i++)
			((uint16_t *)dst)[i] = aim_f32_to_bf16(((const float *)src)[i]);
	} else if (dt == AIM_I64 && st == AIM_I32) {
		for (size_t i = 0; i < n; i++)
			((int64_t *)dst)[i] = ((const int32_t *)src)[i];
	} else {
		for (size_t i = 0; i < n; i++)
			store(dst, dt, i, load(src, st, i));
	}
}

void aim_to_f32(float *dst, const aim_tensor *t)
{
	aim_convert(dst, AIM_F32, t->data, t->dtype, (size_t)aim_tensor_numel(t));
}
