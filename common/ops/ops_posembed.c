/* The fixed 2-D sin-cos position table of AIM v1 (SinCosPosEmbed in the
 * published code, after MAE's get_2d_sincos_pos_embed). Computed in float
 * with the same sequence of float operations as the reference, so the table
 * matches it to the last bit or so, for any rows × cols grid. */
#include <math.h>

#include "ops.h"

int aim_sincos_pos_2d(float *table, int rows, int cols, int D)
{
	if (D <= 0 || D % 4)
		return -1;
	int q = D / 4; /* frequencies per axis */
	float omega[q];
	for (int i = 0; i < q; i++) {
		/* ω_i = 1 / 10000^(i / q), in float as torch computes it */
		float e = (float)i / (float)q;
		omega[i] = 1.0f / powf(10000.0f, e);
	}
	for (int r = 0; r < rows; r++) {
		for (int c = 0; c < cols; c++) {
			float *t = table + ((size_t)r * cols + c) * D;
			/* The published code meshes (x = column, y = row) with
			 * indexing="xy" and encodes grid[0] — the column — first. */
			for (int i = 0; i < q; i++) {
				float ac = (float)c * omega[i];
				float ar = (float)r * omega[i];
				t[i] = sinf(ac);
				t[q + i] = cosf(ac);
				t[2 * q + i] = sinf(ar);
				t[3 * q + i] = cosf(ar);
			}
		}
	}
	return 0;
}
