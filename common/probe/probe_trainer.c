/* Probe heads trained side by side at several learning rates (probe_trainer.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "metrics.h"
#include "probe_data.h"
#include "probe_trainer.h"
#include "safetensors.h"
#include "stream.h"
#include "weights_file.h"

int aim_probe_heads(const aim_probe_hparams *hp, const aim_record *meta, int64_t D,
		    int model_heads)
{
	if (hp->heads)
		return hp->heads;
	if (model_heads)
		return model_heads;
	int h = aim_features_heads(meta);
	if (h)
		return h;
	return aim_head_default_heads((int)D);
}

int aim_probe_class_count(int classes, const aim_record *meta, int64_t max_label,
			  const char *what)
{
	char **names;
	int ncls = aim_classes_parse(meta, what, &names);
	if (ncls < 0)
		return ncls;
	aim_classes_free(names, ncls);
	if (ncls && classes && classes != ncls)
		return aim_error("%s: the stream lists %d classes, --classes says %d", what, ncls,
				 classes);
	int C = classes ? classes : ncls ? ncls : (int)max_label + 1;
	if (C < 1)
		return aim_error("%s: the number of classes is unknown: the stream has no "
				 "aim.classes; give --classes", what);
	if (max_label >= C)
		return aim_error("%s: label %lld outside the %d classes", what, (long long)max_label, C);
	if (C < 2)
		return aim_error("%s: a classifier needs at least 2 classes (found %d)", what, C);
	return C;
}

/* Mean of the K tokens of each sample, for the linear probe. */
static void mean_tokens(float *out, const float *x, int64_t B, int64_t K, int64_t D)
{
#pragma omp parallel for schedule(static)
	for (int64_t b = 0; b < B; b++)
		for (int64_t d = 0; d < D; d++) {
			double s = 0;
			for (int64_t i = 0; i < K; i++)
				s += x[(b * K + i) * D + d];
			out[b * D + d] = (float)(s / (double)K);
		}
}

static const char *kind_name(aim_probe_kind k)
{
	return k == AIM_PROBE_ATTENTIVE ? "attentive" : "linear";
}

/* --init: a head file whose shape must be the one asked for. */
static int load_init(aim_head *h, const char *path, const aim_head_config *want)
{
	aim_weights_file f; /* safetensors or a PyTorch checkpoint, by content */
	if (aim_wf_open(&f, path))
		return AIM_ERR;
	int rc = aim_head_load(h, aim_wf_record(&f), want->heads, path);
	aim_wf_close(&f);
	if (rc)
		return AIM_ERR;
	const aim_head_config *c = &h->cfg;
	if (c->kind != want->kind || c->dim != want->dim || c->classes != want->classes ||
	    (c->kind == AIM_PROBE_ATTENTIVE && (c->heads != want->heads || c->queries != want->queries)) ||
	    c->linear_bias != want->linear_bias) {
		aim_head_free(h);
		return aim_error("%s: a %s head of dimension %d, %d classes, %d heads, %d queries%s "
				 "does not match the one asked for (%s, %d, %d, %d, %d%s)", path,
				 kind_name(c->kind), c->dim, c->classes, c->heads, c->queries,
				 c->linear_bias ? ", linear bias" : "", kind_name(want->kind),
				 want->dim, want->classes, want->heads, want->queries,
				 want->linear_bias ? ", linear bias" : "");
	}
	return AIM_OK;
}

int aim_probe_trainer_init(aim_probe_trainer *tr, const aim_probe_hparams *hp, int64_t K,
			   int64_t D, int C, int heads)
{
	memset(tr, 0, sizeof *tr);
	tr->hp = hp;
	tr->K = K, tr->D = D, tr->C = C;
	aim_head_config_default(&tr->cfg, hp->kind, (int)D, C,
				hp->kind == AIM_PROBE_ATTENTIVE ? heads : 0);
	if (hp->kind == AIM_PROBE_ATTENTIVE)
		tr->cfg.queries = hp->queries;
	tr->cfg.linear_bias = hp->linear_bias;
	if (!(tr->t = calloc((size_t)hp->nlr, sizeof *tr->t)))
		return aim_error("out of memory");
	aim_head start;
	if (hp->init && load_init(&start, hp->init, &tr->cfg))
		return AIM_ERR;
	int rc = AIM_OK;
	for (int i = 0; i < hp->nlr && !rc; i++) {
		/* the same initial weights for every learning rate: a fair comparison */
		rc = hp->init ? aim_head_copy(&tr->t[i].head, &start)
			      : aim_head_init(&tr->t[i].head, &tr->cfg, hp->seed);
		if (!rc)
			rc = aim_head_adamw_init(&tr->t[i].opt, &tr->t[i].head);
		tr->t[i].lr = hp->lr[i];
	}
	if (hp->init)
		aim_head_free(&start);
	if (rc)
		return rc;
	int64_t B = hp->batch;
	int64_t rows = hp->kind == AIM_PROBE_ATTENTIVE ? B * K : B;
	tr->xin = hp->kind == AIM_PROBE_LINEAR ? malloc((size_t)(B * D) * sizeof(float)) : NULL;
	tr->xhat = malloc((size_t)(rows * D) * sizeof(float));
	tr->mean = malloc((size_t)D * sizeof(float));
	tr->rstd = malloc((size_t)D * sizeof(float));
	tr->logits = malloc((size_t)(B * C) * sizeof(float));
	tr->dlogits = malloc((size_t)(B * C) * sizeof(float));
	tr->grad = malloc(tr->t[0].head.nparams * sizeof(float));
	if ((hp->kind == AIM_PROBE_LINEAR && !tr->xin) || !tr->xhat || !tr->mean || !tr->rstd ||
	    !tr->logits || !tr->dlogits || !tr->grad)
		return aim_error("out of memory for a batch of %lld", (long long)B);
	return AIM_OK;
}

void aim_probe_trainer_start_epoch(aim_probe_trainer *tr)
{
	for (int i = 0; i < tr->hp->nlr; i++)
		tr->t[i].loss_sum = 0, tr->t[i].correct = tr->t[i].seen = 0;
}

int aim_probe_trainer_step(aim_probe_trainer *tr, const float *x, const int64_t *y, int64_t n,
			   double progress)
{
	const aim_probe_hparams *hp = tr->hp;
	int64_t K = tr->K, D = tr->D;
	int C = tr->C;
	for (int64_t b = 0; b < n; b++)
		if (y[b] < 0 || y[b] >= C)
			return aim_error("label %lld outside the %d classes", (long long)y[b], C);
	if (hp->kind == AIM_PROBE_LINEAR) {
		mean_tokens(tr->xin, x, n, K, D);
		aim_head_bn_train_fwd(&tr->t[0].head, tr->xhat, tr->mean, tr->rstd, tr->xin, n);
	} else {
		aim_head_bn_train_fwd(&tr->t[0].head, tr->xhat, tr->mean, tr->rstd, x, n * K);
	}
	double factor = aim_head_lr_schedule(1.0, progress, hp->warmup, hp->epochs);
	for (int i = 0; i < hp->nlr; i++) {
		aim_probe_trainee *t = &tr->t[i];
		if (aim_head_forward_train(&t->head, &t->cache, tr->xhat, n,
					   hp->kind == AIM_PROBE_ATTENTIVE ? K : 1, tr->logits))
			return AIM_ERR;
		int64_t counted;
		double loss = aim_head_cross_entropy(tr->logits, y, n, C, hp->smoothing, tr->dlogits,
						&counted);
		if (!isfinite(loss))
			return aim_error("lr %g: the loss is %g at step %lld: lower the learning rate",
					 t->lr, loss, (long long)tr->step);
		t->loss_sum += loss * (double)counted;
		t->seen += counted;
		for (int64_t b = 0; b < n; b++)
			t->correct += aim_rank_of(tr->logits + b * C, C, (int)y[b]) == 0;
		memset(tr->grad, 0, t->head.nparams * sizeof(float));
		if (aim_head_backward(&t->head, &t->cache, tr->xhat, tr->dlogits, tr->grad, NULL))
			return AIM_ERR;
		aim_head_adamw_step(&t->opt, &t->head, tr->grad, t->lr * factor, hp->weight_decay);
	}
	tr->step++;
	return AIM_OK;
}

void aim_probe_trainer_finish(aim_probe_trainer *tr)
{
	const aim_head *first = &tr->t[0].head;
	for (int i = 1; i < tr->hp->nlr; i++) {
		aim_head *h = &tr->t[i].head;
		memcpy(h->running_mean, first->running_mean, (size_t)tr->D * sizeof(float));
		memcpy(h->running_var, first->running_var, (size_t)tr->D * sizeof(float));
		h->batches_tracked = first->batches_tracked;
	}
}

/* One validation record: its features (through the trunk for patches) and
 * labels; the class list checked against the training stream's. */
static int val_record(const aim_record *r, const char *what, aim_trunk_features *tf, int64_t D,
		      char **train_classes, int ntrain, aim_label_buf *lb, float **x,
		      const float **feat, int64_t *B, int64_t *K, const int64_t **labels)
{
	char **names;
	int nn = aim_classes_parse(r, what, &names);
	if (nn < 0)
		return nn;
	int same = !nn || !ntrain || aim_classes_equal(names, nn, train_classes, ntrain);
	aim_classes_free(names, nn);
	if (!same)
		return aim_error("%s: the class list differs from the training stream's", what);
	int64_t Dv = D;
	if (tf) {
		if (aim_trunk_features_run(tf, r, what, feat, B, K) ||
		    aim_record_labels(r, *B, what, lb, labels))
			return AIM_ERR;
	} else if (aim_features_shape(r, what, B, K, &Dv, lb, labels)) {
		return AIM_ERR;
	}
	if (!*labels)
		return aim_error("%s: no 'label' tensor: --val needs labelled samples", what);
	if (Dv != D)
		return aim_error("%s: features of dimension %lld, the training features have %lld",
				 what, (long long)Dv, (long long)D);
	if (!tf) {
		float *nx = realloc(*x, (size_t)(*B * *K * D) * sizeof(float));
		if (!nx)
			return aim_error("out of memory");
		*x = nx;
		aim_features_to_f32(nx, aim_record_find(r, "features"));
		*feat = nx;
	}
	return AIM_OK;
}

int aim_probe_trainer_validate(aim_probe_trainer *tr, const char *path, aim_trunk_features *tf,
			       const aim_record *train_meta)
{
	int n = tr->hp->nlr, C = tr->C, rc = AIM_OK;
	char **train_classes;
	int ntrain = aim_classes_parse(train_meta, "the training stream", &train_classes);
	if (ntrain < 0)
		return ntrain;
	aim_reader *rd = aim_reader_open((const char *const *)&path, 1);
	aim_metrics *m = calloc((size_t)n, sizeof *m);
	if (!rd || !m) {
		rc = rd ? aim_error("out of memory") : AIM_ERR;
		goto out;
	}
	for (int i = 0; i < n; i++)
		if ((rc = aim_metrics_init(&m[i], C)))
			goto out;
	aim_record r;
	aim_record_init(&r);
	aim_label_buf lb = {0};
	float *x = NULL, *logits = NULL;
	while ((rc = aim_reader_next(rd, &r)) == 1) {
		const char *what = aim_reader_where(rd);
		const float *feat;
		const int64_t *labels;
		int64_t B, K;
		if ((rc = val_record(&r, what, tf, tr->D, train_classes, ntrain, &lb, &x, &feat, &B,
				     &K, &labels)))
			break;
		float *nl = realloc(logits, (size_t)(B * C) * sizeof(float));
		if (!nl) {
			rc = aim_error("out of memory");
			break;
		}
		logits = nl;
		for (int i = 0; i < n && !rc; i++) {
			if ((rc = aim_head_forward(&tr->t[i].head, feat, B, K, NULL, logits)))
				break;
			if (aim_metrics_add(&m[i], logits, labels, B))
				rc = aim_error_prefix("%s", what);
		}
		if (rc)
			break;
	}
	if (!rc && !m[0].n)
		rc = aim_error("%s: no labelled samples", path);
	for (int i = 0; i < n && !rc; i++) {
		aim_probe_trainee *t = &tr->t[i];
		t->val_top1 = aim_metrics_top1(&m[i]);
		t->val_top5 = aim_metrics_top5(&m[i]);
		t->val_loss = aim_metrics_loss(&m[i]);
		t->val_n = m[i].n;
	}
	free(x), free(logits);
	aim_label_buf_free(&lb);
	aim_record_free(&r);
out:
	if (m)
		for (int i = 0; i < n; i++)
			aim_metrics_free(&m[i]);
	free(m);
	aim_classes_free(train_classes, ntrain);
	aim_reader_close(rd);
	return rc < 0 ? rc : AIM_OK;
}

int aim_probe_trainer_best(const aim_probe_trainer *tr, int validated)
{
	const aim_probe_trainee *t = tr->t;
	int best = 0;
	for (int i = 1; i < tr->hp->nlr; i++)
		if (validated ? t[i].val_top1 > t[best].val_top1 ||
					(t[i].val_top1 == t[best].val_top1 && t[i].val_loss < t[best].val_loss)
			      : t[i].loss_sum / (double)t[i].seen < t[best].loss_sum / (double)t[best].seen)
			best = i;
	return best;
}

char *aim_probe_trainer_json(const aim_probe_trainer *tr, int best, int validated)
{
	const aim_probe_hparams *hp = tr->hp;
	const aim_probe_trainee *t = tr->t;
	json_t *j = json_pack("{s:s,s:i,s:i,s:f,s:f,s:f,s:f,s:I,s:I}", "probe", kind_name(hp->kind),
			      "epochs", hp->epochs, "batch", hp->batch, "lr", t[best].lr,
			      "weight_decay", hp->weight_decay, "label_smoothing", hp->smoothing,
			      "warmup_epochs", hp->warmup, "seed", (json_int_t)hp->seed, "samples",
			      (json_int_t)t[0].seen);
	if (!j)
		return NULL;
	json_t *tried = json_array();
	for (int i = 0; i < hp->nlr; i++) {
		json_t *e = json_pack("{s:f,s:f}", "lr", t[i].lr, "train_loss",
				      t[i].seen ? t[i].loss_sum / (double)t[i].seen : NAN);
		if (validated) {
			json_object_set_new(e, "val_top1", json_real(t[i].val_top1));
			json_object_set_new(e, "val_top5", json_real(t[i].val_top5));
			json_object_set_new(e, "val_loss", json_real(t[i].val_loss));
		}
		json_array_append_new(tried, e);
	}
	json_object_set_new(j, "tried", tried);
	json_object_set_new(j, "chosen_by", json_string(validated ? "val top-1" : "train loss"));
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
	json_decref(j);
	return s;
}

void aim_probe_trainer_free(aim_probe_trainer *tr)
{
	for (int i = 0; tr->t && i < tr->hp->nlr; i++) {
		aim_head_free(&tr->t[i].head);
		aim_head_adamw_free(&tr->t[i].opt);
		aim_head_cache_free(&tr->t[i].cache);
	}
	free(tr->t), free(tr->xin), free(tr->xhat), free(tr->mean), free(tr->rstd);
	free(tr->logits), free(tr->dlogits), free(tr->grad);
}

int aim_probe_trainer_head_record(const aim_probe_trainer *tr, int best, int validated,
				  const aim_record *meta, aim_record *out)
{
	if (aim_head_to_record(&tr->t[best].head, out))
		return AIM_ERR;
	static const char *const keep[] = {"aim.classes", "aim.model", "aim.layers", "aim.config",
					   "aim.pool"};
	for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
		const char *v = aim_record_get_meta(meta, keep[i]);
		if (v)
			aim_record_set_meta(out, keep[i], v);
	}
	char *hp = aim_probe_trainer_json(tr, best, validated);
	int rc = !hp || aim_record_set_meta(out, "aim.probe", hp);
	free(hp);
	return rc ? aim_error("out of memory") : AIM_OK;
}
