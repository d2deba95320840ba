/* From a record's `features` to one search vector per sample: pooling over
 * patch tokens (with optional query dropout), L2 normalisation, and the
 * checks that keep NaN out of the bank. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "retrieve.h"

int aim_pool_parse(const char *s)
{
	if (!strcmp(s, "mean"))
		return AIM_POOL_MEAN;
	if (!strcmp(s, "max"))
		return AIM_POOL_MAX;
	if (!strcmp(s, "cls"))
		return AIM_POOL_CLS;
	return -1;
}

const char *aim_pool_name(aim_pool p)
{
	return p == AIM_POOL_MAX ? "max" : p == AIM_POOL_CLS ? "cls" : "mean";
}

/* splitmix64: tiny, well mixed, and easy to reproduce in a reference. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

int64_t aim_dropout_keep(uint64_t seed, int64_t index, int64_t K, double p, int64_t *keep)
{
	int64_t ndrop = llround(p * (double)K);
	int64_t nkeep = K - ndrop < 1 ? 1 : K - ndrop;
	uint64_t state = seed + (uint64_t)index * 0x9E3779B97F4A7C15ull;
	/* Partial Fisher-Yates over 0..K-1 held in keep[] itself would need K
	 * slots; the caller provides K. */
	for (int64_t i = 0; i < K; i++)
		keep[i] = i;
	for (int64_t i = 0; i < nkeep; i++) {
		int64_t j = i + (int64_t)(splitmix64(&state) % (uint64_t)(K - i));
		int64_t t = keep[i];
		keep[i] = keep[j];
		keep[j] = t;
	}
	return nkeep;
}

static int check_finite(const float *v, int64_t d, int64_t sample, const char *what)
{
	for (int64_t j = 0; j < d; j++)
		if (!isfinite(v[j]))
			return aim_error("%s: %s in features (sample %lld)", what,
					 isnan(v[j]) ? "NaN" : "infinity", (long long)sample);
	return 0;
}

static void l2_normalize(float *v, int64_t d)
{
	double s = 0;
	for (int64_t j = 0; j < d; j++)
		s += (double)v[j] * v[j];
	if (s == 0) /* a zero vector has no direction: it stays zero (score 0) */
		return;
	float inv = (float)(1.0 / sqrt(s));
	for (int64_t j = 0; j < d; j++)
		v[j] *= inv;
}

int64_t aim_prep_features(const aim_tensor *feat, const aim_prep *p, int64_t first,
			  float *out, int64_t *dim, const char *what)
{
	if (feat->dtype != AIM_F32 && feat->dtype != AIM_F16 && feat->dtype != AIM_BF16)
		return aim_error("%s: features must be F32, F16 or BF16, not %s", what,
				 aim_dtype_name(feat->dtype));
	if (feat->ndim != 2 && feat->ndim != 3) {
		char buf[64];
		return aim_error("%s: features must be [B, K, D] or [B, D], not %s", what,
				 aim_shape_str(feat->ndim, feat->shape, buf, sizeof buf));
	}
	int64_t B = feat->shape[0], D = feat->shape[feat->ndim - 1];
	int64_t K = feat->ndim == 3 ? feat->shape[1] : 1;
	if (D <= 0 || (feat->ndim == 3 && K <= 0))
		return aim_error("%s: features have an empty dimension", what);
	*dim = D;
	if (!out)
		return B;
	size_t esz = aim_dtype_size(feat->dtype);
	const unsigned char *base = feat->data;
	float *tok = malloc(sizeof(float) * D);
	double *acc = malloc(sizeof(double) * D);
	int64_t *keep = malloc(sizeof(int64_t) * K);
	if (!tok || !acc || !keep) {
		free(tok), free(acc), free(keep);
		return aim_error("%s: out of memory", what);
	}
	int rc = 0;
	for (int64_t b = 0; b < B && !rc; b++) {
		float *o = out + b * D;
		const unsigned char *s = base + (size_t)(b * K * D) * esz;
		if (feat->ndim == 2) {
			aim_convert(o, AIM_F32, s, feat->dtype, D);
			rc = check_finite(o, D, b, what);
		} else {
			int64_t nkeep = K;
			if (p->dropout > 0 && p->pool != AIM_POOL_CLS)
				nkeep = aim_dropout_keep(p->seed, first + b, K, p->dropout, keep);
			else
				for (int64_t i = 0; i < K; i++)
					keep[i] = i;
			if (p->pool == AIM_POOL_CLS)
				nkeep = 1;
			for (int64_t i = 0; i < nkeep && !rc; i++) {
				aim_convert(tok, AIM_F32, s + (size_t)(keep[i] * D) * esz, feat->dtype, D);
				rc = check_finite(tok, D, b, what);
				for (int64_t j = 0; j < D; j++) {
					if (i == 0)
						acc[j] = tok[j];
					else if (p->pool == AIM_POOL_MAX)
						acc[j] = tok[j] > acc[j] ? tok[j] : acc[j];
					else
						acc[j] += tok[j];
				}
			}
			double scale = p->pool == AIM_POOL_MEAN ? 1.0 / (double)nkeep : 1.0;
			for (int64_t j = 0; j < D; j++)
				o[j] = (float)(acc[j] * scale);
		}
		if (!rc && p->normalize)
			l2_normalize(o, D);
	}
	free(tok), free(acc), free(keep);
	return rc ? AIM_ERR : B;
}

int aim_names_parse(const aim_record *r, int64_t B, char **names, const char *what)
{
	for (int64_t i = 0; i < B; i++)
		names[i] = NULL;
	const char *js = aim_record_get_meta(r, "aim.names");
	if (!js)
		return 0;
	json_error_t jerr;
	json_t *a = json_loads(js, 0, &jerr);
	if (!a || !json_is_array(a) || (int64_t)json_array_size(a) != B) {
		json_decref(a);
		return aim_error("%s: aim.names is not a JSON list of %lld names", what, (long long)B);
	}
	for (int64_t i = 0; i < B; i++) {
		json_t *s = json_array_get(a, i);
		if (!json_is_string(s)) {
			json_decref(a);
			aim_names_free(names, i);
			return aim_error("%s: aim.names entry %lld is not a string", what, (long long)i);
		}
		names[i] = strdup(json_string_value(s));
	}
	json_decref(a);
	return 0;
}

void aim_names_free(char **names, int64_t B)
{
	for (int64_t i = 0; i < B; i++) {
		free(names[i]);
		names[i] = NULL;
	}
}
