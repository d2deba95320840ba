/* Orders, masks and the names of the variants (train_variant.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "train_rng.h"
#include "train_variant.h"

aim_variant aim_variant_default(void)
{
	return (aim_variant){AIM_ORDER_RASTER, AIM_ATTN_PREFIX, AIM_OBJ_AUTOREGRESSIVE, 0.75,
			     AIM_HEAD_MLP};
}

static const char *const order_names[] = {"raster", "spiral", "checkerboard", "random"};
static const char *const attn_names[] = {"prefix", "causal"};
static const char *const objective_names[] = {"autoregressive", "masked"};
static const char *const head_names[] = {"mlp", "none", "transformer"};

static int find(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

#define NAMES(kind, type, arr)                                                   \
	const char *aim_##kind##_name(type k)                                    \
	{                                                                        \
		return (int)k >= 0 && (int)k < (int)(sizeof arr / sizeof arr[0]) \
			       ? arr[k] : "?";                                   \
	}                                                                        \
	int aim_##kind##_parse(const char *name)                                 \
	{                                                                        \
		return find(arr, (int)(sizeof arr / sizeof arr[0]), name);       \
	}
NAMES(order, aim_order_kind, order_names)
NAMES(attn, aim_attn_kind, attn_names)
NAMES(objective, aim_objective_kind, objective_names)
NAMES(head, aim_head_kind, head_names)
#undef NAMES

int aim_probe_mask_parse(const char *name)
{
	return !strcmp(name, "none") ? 0 : !strcmp(name, "causal") ? 1 : -1;
}

/* The spiral walk from the top-left corner (down, right, up, left,
 * turning at the edge or a walked cell), written backwards. */
static int spiral(int *order, int R, int C)
{
	const int K = R * C, dr[4] = {1, 0, -1, 0}, dc[4] = {0, 1, 0, -1};
	unsigned char *seen = calloc(K, 1);
	if (!seen)
		return aim_error("out of memory");
	int r = 0, c = 0, dir = 0;
	for (int i = 0; i < K; i++) {
		order[K - 1 - i] = r * C + c;
		seen[r * C + c] = 1;
		int nr = r + dr[dir], nc = c + dc[dir];
		if (nr < 0 || nr >= R || nc < 0 || nc >= C || seen[nr * C + nc]) {
			dir = (dir + 1) % 4;
			nr = r + dr[dir];
			nc = c + dc[dir];
		}
		r = nr;
		c = nc;
	}
	free(seen);
	return 0;
}

int aim_patch_order(int *order, aim_order_kind k, int rows, int cols, uint64_t seed)
{
	const int K = rows * cols;
	int n = 0;
	switch (k) {
	case AIM_ORDER_SPIRAL:
		return spiral(order, rows, cols);
	case AIM_ORDER_CHECKERBOARD:
		for (int colour = 0; colour < 2; colour++)
			for (int q = 0; q < K; q++)
				if ((q / cols + q % cols) % 2 == colour)
					order[n++] = q;
		return 0;
	case AIM_ORDER_RANDOM:
		for (int q = 0; q < K; q++)
			order[q] = q;
		for (int i = K - 1; i > 0; i--) {
			int j = (int)aim_rng_int(seed, AIM_RNG_ORDER, (uint64_t)i, 0, i);
			int tmp = order[i];
			order[i] = order[j];
			order[j] = tmp;
		}
		return 0;
	default:
		for (int q = 0; q < K; q++)
			order[q] = q;
	}
	return 0;
}

int aim_mask_count(double ratio, int K)
{
	long m = lround(ratio * K);
	if (m > K - 1)
		m = K - 1;
	return m < 1 ? 1 : (int)m;
}

void aim_mask_places(unsigned char *flags, int *p, uint64_t seed, uint64_t stream,
		     uint64_t sample, int K, int count)
{
	memset(flags, 0, K);
	for (int q = 0; q < K; q++)
		p[q] = q;
	for (int i = K - 1; i > 0; i--) {
		int j = (int)aim_rng_int(seed, stream, sample * (uint64_t)K + (uint64_t)i, 0, i);
		int tmp = p[i];
		p[i] = p[j];
		p[j] = tmp;
	}
	for (int i = 0; i < count; i++)
		flags[p[i]] = 1;
}

aim_head_kind aim_opt_head(const char *arg)
{
	int k = aim_head_parse(arg);
	if (k < 0)
		aim_usage_error("unknown --head '%s' (mlp, none, transformer)", arg);
	return (aim_head_kind)k;
}

aim_order_kind aim_opt_order(const char *arg)
{
	int k = aim_order_parse(arg);
	if (k < 0)
		aim_usage_error("unknown --order '%s' (raster, spiral, checkerboard, random)", arg);
	return (aim_order_kind)k;
}

aim_attn_kind aim_opt_attention(const char *arg)
{
	int k = aim_attn_parse(arg);
	if (k < 0)
		aim_usage_error("unknown --attention '%s' (prefix, causal)", arg);
	return (aim_attn_kind)k;
}

aim_objective_kind aim_opt_objective(const char *arg)
{
	int k = aim_objective_parse(arg);
	if (k < 0)
		aim_usage_error("unknown --objective '%s' (autoregressive, masked)", arg);
	return (aim_objective_kind)k;
}

int aim_variant_describe(const aim_variant *v, char *buf, size_t n)
{
	const aim_variant dv = aim_variant_default();
	if (v->order == dv.order && v->attention == dv.attention && v->objective == dv.objective &&
	    v->head == dv.head)
		return 0;
	if (v->objective == AIM_OBJ_MASKED)
		snprintf(buf, n, "masked objective (%g of the patches), %s head", v->mask_ratio,
			 aim_head_name(v->head));
	else
		snprintf(buf, n, "%s order, %s attention, %s head", aim_order_name(v->order),
			 aim_attn_name(v->attention), aim_head_name(v->head));
	return 1;
}
