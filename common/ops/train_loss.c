/* Next-patch normalised-pixel loss, forward and backward (train_loss.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train_loss.h"

long aim_pixloss_count(const int *prefix, int B, int K)
{
	long n = 0;
	for (int b = 0; b < B; b++)
		n += K - prefix[b];
	return n;
}

void aim_pixloss_targets(float *target, const float *patches, long npatches, int P,
			 int norm_pix, float *stats)
{
	#pragma omp parallel for schedule(static)
	for (long i = 0; i < npatches; i++) {
		const float *x = patches + i * P;
		float *t = target + i * P;
		double sum = 0, sq = 0;
		for (int j = 0; j < P; j++)
			sum += x[j];
		double mean = sum / P;
		for (int j = 0; j < P; j++)
			sq += (x[j] - mean) * (x[j] - mean);
		/* Unbiased variance, as torch.var() computes it. */
		double sd = sqrt(sq / (P > 1 ? P - 1 : 1) + AIM_NORM_PIX_EPS);
		if (stats) {
			stats[2 * i] = (float)mean;
			stats[2 * i + 1] = (float)sd;
		}
		if (norm_pix)
			for (int j = 0; j < P; j++)
				t[j] = (float)((x[j] - mean) / sd);
		else
			memcpy(t, x, sizeof(float) * P);
	}
}

long aim_pixloss_rows(const int *prefix, int B, int K, int *rows)
{
	long n = 0;
	for (int b = 0; b < B; b++)
		for (int k = prefix[b] - 1; k < K - 1; k++)
			rows[n++] = b * K + k;
	return n;
}

double aim_pixloss_forward(const float *pred, const float *target, const int *rows, long M,
			   int P, double denom)
{
	double total = 0;
	/* Fixed chunks summed in order: the same bits whatever the threads. */
	enum { CHUNK = 64 };
	long nchunk = (M + CHUNK - 1) / CHUNK;
	double *part = malloc(sizeof(double) * (nchunk ? nchunk : 1));
	if (!part)
		return NAN;
	#pragma omp parallel for schedule(static)
	for (long c = 0; c < nchunk; c++) {
		double s = 0;
		for (long i = c * CHUNK; i < M && i < (c + 1) * CHUNK; i++) {
			const float *y = pred + i * P;
			const float *t = target + ((long)rows[i] + 1) * P;
			double se = 0;
			for (int j = 0; j < P; j++) {
				double d = (double)y[j] - t[j];
				se += d * d;
			}
			s += se / P;
		}
		part[c] = s;
	}
	for (long c = 0; c < nchunk; c++)
		total += part[c];
	free(part);
	return total / denom;
}

void aim_pixloss_backward(const float *pred, const float *target, const int *rows, long M,
			  int P, double denom, float *dpred)
{
	float scale = (float)(2.0 / ((double)P * denom));
	#pragma omp parallel for schedule(static)
	for (long i = 0; i < M; i++) {
		const float *y = pred + i * P;
		const float *t = target + ((long)rows[i] + 1) * P;
		float *g = dpred + i * P;
		for (int j = 0; j < P; j++)
			g[j] = scale * (y[j] - t[j]);
	}
}
