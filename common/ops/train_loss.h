/* The AIM pretraining loss: next-patch pixel regression outside the prefix.
 *
 * For an image of K patches with prefix length S (1 <= S < K), the head's
 * output at position k predicts patch k+1. Predictions count for the
 * patches that lie outside the prefix, k+1 = S .. K-1, i.e. K-S of them.
 * The loss of one predicted patch is the mean over its P values of the
 * squared error against the target patch; with norm-pix the target is the
 * patch standardised by its own mean and unbiased variance,
 * (x - mean) / sqrt(var + 1e-6), as in the published recipe. The batch
 * loss is the sum over predicted patches divided by `denom`, the number of
 * predicted patches in the whole (global) batch, so that micro-batches and
 * MPI ranks add up to exactly the loss of one big batch. */
#ifndef AIM_TRAIN_LOSS_H
#define AIM_TRAIN_LOSS_H

#define AIM_NORM_PIX_EPS 1e-6

/* Number of predicted patches of B images: sum of K - prefix[b]. */
long aim_pixloss_count(const int *prefix, int B, int K);

/* Targets from (already mean/std normalised) patches [B*K, P]: a copy, or
 * with norm_pix each patch standardised. stats, if non-NULL, receives each
 * patch's mean and std ([B*K, 2]) so predictions can be de-normalised. */
void aim_pixloss_targets(float *target, const float *patches, long npatches, int P,
			 int norm_pix, float *stats);

/* The rows that predict something: rows[i] = b·K + k for k = prefix[b]−1
 * .. K−2 of every image b, in order. Returns their count (the same as
 * aim_pixloss_count). Only these rows go through the pixel head. */
long aim_pixloss_rows(const int *prefix, int B, int K, int *rows);

/* Forward: the loss of pred [M, P], row i predicting target row rows[i]+1
 * of target [B·K, P]. */
double aim_pixloss_forward(const float *pred, const float *target, const int *rows, long M,
			   int P, double denom);

/* Backward: dpred [M, P] = d loss / d pred. */
void aim_pixloss_backward(const float *pred, const float *target, const int *rows, long M,
			  int P, double denom, float *dpred);

#endif
