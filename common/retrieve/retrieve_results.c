/* Result sets: neighbours of a batch of queries, as found by one search,
 * as carried in a stream (so a shard's answer can travel to a merge), the
 * merge of shards into the global top-k, and the weighted k-NN vote. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "retrieve.h"

int aim_results_alloc(aim_results *r, int64_t m, int k, int with_qlabel, int with_nlabel)
{
	memset(r, 0, sizeof *r);
	r->m = m;
	r->k = k;
	size_t mk = (size_t)(m * k) + 1, m1 = (size_t)m + 1;
	r->qid = calloc(m1, sizeof(int64_t));
	r->qname = calloc(m1, sizeof(char *));
	r->nid = calloc(mk, sizeof(int64_t));
	r->nkey = calloc(mk, sizeof(int64_t));
	r->score = calloc(mk, sizeof(float));
	r->nname = calloc(mk, sizeof(char *));
	if (with_qlabel)
		r->qlabel = calloc(m1, sizeof(int64_t));
	if (with_nlabel)
		r->nlabel = calloc(mk, sizeof(int64_t));
	if (!r->qid || !r->qname || !r->nid || !r->nkey || !r->score || !r->nname ||
	    (with_qlabel && !r->qlabel) || (with_nlabel && !r->nlabel)) {
		aim_results_free(r);
		return aim_error("out of memory (results of %lld queries)", (long long)m);
	}
	for (int64_t i = 0; i < m * k; i++) {
		r->nid[i] = r->nkey[i] = -1;
		r->score[i] = -INFINITY;
		if (r->nlabel)
			r->nlabel[i] = -1;
	}
	return 0;
}

void aim_results_free(aim_results *r)
{
	if (r->qname)
		for (int64_t i = 0; i < r->m; i++)
			free(r->qname[i]);
	if (r->nname)
		for (int64_t i = 0; i < r->m * r->k; i++)
			free(r->nname[i]);
	free(r->qid), free(r->qlabel), free(r->qname), free(r->nid), free(r->nkey);
	free(r->score), free(r->nlabel), free(r->nname), free(r->classes);
	memset(r, 0, sizeof *r);
}

int aim_results_from_hits(aim_results *r, const aim_bank *b, const aim_hit *hits)
{
	char buf[32];
	for (int64_t i = 0; i < r->m * r->k; i++) {
		int64_t row = hits[i].row;
		free(r->nname[i]);
		r->nname[i] = NULL;
		r->score[i] = hits[i].score;
		r->nid[i] = row < 0 ? -1 : b->id[row];
		r->nkey[i] = row < 0 ? -1 : b->base + row;
		if (r->nlabel)
			r->nlabel[i] = row < 0 || !b->label ? -1 : b->label[row];
		if (row >= 0 && !(r->nname[i] = strdup(aim_bank_name(b, row, buf, sizeof buf))))
			return aim_error("out of memory");
	}
	if (b->classes && !r->classes)
		r->classes = strdup(b->classes);
	return 0;
}

static int set_json_meta(aim_record *rec, const char *key, json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(v);
	if (!s)
		return aim_error("out of memory (%s)", key);
	int rc = aim_record_set_meta(rec, key, s);
	free(s);
	return rc;
}

int aim_results_to_record(const aim_results *r, aim_record *rec)
{
	int64_t mk[2] = {r->m, r->k}, m1[1] = {r->m};
	/* 8-byte tensors first, so all stay aligned in the record */
	if (!aim_record_add(rec, "neighbors", AIM_I64, 2, mk, r->nid) ||
	    !aim_record_add(rec, "neighbor_keys", AIM_I64, 2, mk, r->nkey) ||
	    !aim_record_add(rec, "id", AIM_I64, 1, m1, r->qid) ||
	    (r->qlabel && !aim_record_add(rec, "label", AIM_I64, 1, m1, r->qlabel)) ||
	    (r->nlabel && !aim_record_add(rec, "neighbor_labels", AIM_I64, 2, mk, r->nlabel)) ||
	    !aim_record_add(rec, "scores", AIM_F32, 2, mk, r->score))
		return AIM_ERR;
	json_t *qn = json_array(), *nn = json_array();
	for (int64_t i = 0; qn && nn && i < r->m; i++) {
		json_array_append_new(qn, json_string(r->qname[i] ? r->qname[i] : ""));
		json_t *row = json_array();
		for (int j = 0; row && j < r->k; j++) {
			const char *s = r->nname[i * r->k + j];
			json_array_append_new(row, s ? json_string(s) : json_null());
		}
		json_array_append_new(nn, row);
	}
	char kbuf[16];
	snprintf(kbuf, sizeof kbuf, "%d", r->k);
	if (set_json_meta(rec, "aim.names", qn) || set_json_meta(rec, "aim.neighbor_names", nn) ||
	    aim_record_set_meta(rec, "aim.k", kbuf) ||
	    (r->classes && aim_record_set_meta(rec, "aim.classes", r->classes)))
		return AIM_ERR;
	return 0;
}

static const aim_tensor *get(const aim_record *rec, const char *name, aim_dtype dt, int ndim,
			     int64_t m, int64_t k, int optional, const char *what)
{
	const aim_tensor *t = aim_record_find(rec, name);
	if (!t && optional)
		return NULL;
	if (!t || t->dtype != dt || t->ndim != ndim || t->shape[0] != m ||
	    (ndim == 2 && t->shape[1] != k)) {
		aim_error("%s: %s missing or not %s [%lld%s]", what, name, aim_dtype_name(dt),
			  (long long)m, ndim == 2 ? ", k" : "");
		return NULL;
	}
	return t;
}

int aim_results_from_record(aim_results *r, const aim_record *rec, const char *what)
{
	memset(r, 0, sizeof *r);
	const aim_tensor *nb = aim_record_find(rec, "neighbors");
	if (!nb || nb->dtype != AIM_I64 || nb->ndim != 2)
		return aim_error("%s: no neighbors I64 [B, k] (not a result stream?)", what);
	int64_t m = nb->shape[0], k = nb->shape[1];
	if (k <= 0 || k > 1000000)
		return aim_error("%s: neighbors has k = %lld", what, (long long)k);
	const aim_tensor *sc = get(rec, "scores", AIM_F32, 2, m, k, 0, what);
	const aim_tensor *key = get(rec, "neighbor_keys", AIM_I64, 2, m, k, 1, what);
	const aim_tensor *id = get(rec, "id", AIM_I64, 1, m, 0, 1, what);
	const aim_tensor *ql = get(rec, "label", AIM_I64, 1, m, 0, 1, what);
	const aim_tensor *nl = get(rec, "neighbor_labels", AIM_I64, 2, m, k, 1, what);
	if (!sc || (!key && aim_record_find(rec, "neighbor_keys")) ||
	    (!id && aim_record_find(rec, "id")) || (!ql && aim_record_find(rec, "label")) ||
	    (!nl && aim_record_find(rec, "neighbor_labels")))
		return AIM_ERR;
	if (aim_results_alloc(r, m, (int)k, ql != NULL, nl != NULL))
		return AIM_ERR;
	memcpy(r->nid, nb->data, sizeof(int64_t) * (size_t)(m * k));
	memcpy(r->score, sc->data, sizeof(float) * (size_t)(m * k));
	memcpy(r->nkey, key ? key->data : nb->data, sizeof(int64_t) * (size_t)(m * k));
	if (ql)
		memcpy(r->qlabel, ql->data, sizeof(int64_t) * (size_t)m);
	if (nl)
		memcpy(r->nlabel, nl->data, sizeof(int64_t) * (size_t)(m * k));
	for (int64_t i = 0; i < m; i++)
		r->qid[i] = id ? aim_i64_at(id->data, i) : i;
	if (aim_names_parse(rec, m, r->qname, what))
		goto fail;
	const char *nn = aim_record_get_meta(rec, "aim.neighbor_names");
	if (nn) {
		json_error_t jerr;
		json_t *a = json_loads(nn, 0, &jerr);
		int ok = a && json_is_array(a) && (int64_t)json_array_size(a) == m;
		for (int64_t i = 0; ok && i < m; i++) {
			json_t *row = json_array_get(a, i);
			ok = json_is_array(row) && (int64_t)json_array_size(row) == k;
			for (int64_t j = 0; ok && j < k; j++) {
				json_t *s = json_array_get(row, j);
				if (json_is_string(s))
					r->nname[i * k + j] = strdup(json_string_value(s));
				else
					ok = json_is_null(s);
			}
		}
		json_decref(a);
		if (!ok) {
			aim_error("%s: aim.neighbor_names is not a list of %lld lists of %lld names",
				  what, (long long)m, (long long)k);
			goto fail;
		}
	}
	char buf[32];
	for (int64_t i = 0; i < m; i++)
		if (!r->qname[i]) {
			snprintf(buf, sizeof buf, "%" PRId64, r->qid[i]);
			r->qname[i] = strdup(buf);
		}
	for (int64_t i = 0; i < m * k; i++)
		if (!r->nname[i] && r->nid[i] >= 0) {
			snprintf(buf, sizeof buf, "%" PRId64, r->nid[i]);
			r->nname[i] = strdup(buf);
		}
	const char *c = aim_record_get_meta(rec, "aim.classes");
	if (c)
		r->classes = strdup(c);
	return 0;
fail:
	aim_results_free(r);
	return AIM_ERR;
}

typedef struct {
	float score;
	int64_t key;
	int part;
	int64_t at;
} cand;

static int cmp_cand(const void *pa, const void *pb)
{
	const cand *a = pa, *b = pb;
	return aim_hit_better(a->score, a->key, b->score, b->key) ? -1
	       : aim_hit_better(b->score, b->key, a->score, a->key) ? 1 : 0;
}

int aim_results_merge(aim_results *out, const aim_results *parts, int nparts, int k,
		      const char *const *what)
{
	int64_t m = parts[0].m;
	int nlab = 1, total = 0;
	for (int p = 0; p < nparts; p++) {
		if (parts[p].m != m)
			return aim_error("%s: %lld queries where %s has %lld", what[p],
					 (long long)parts[p].m, what[0], (long long)m);
		for (int64_t i = 0; i < m; i++)
			if (parts[p].qid[i] != parts[0].qid[i] ||
			    strcmp(parts[p].qname[i], parts[0].qname[i]))
				return aim_error("%s: query %lld is %s where %s has %s", what[p],
						 (long long)i, parts[p].qname[i], what[0],
						 parts[0].qname[i]);
		nlab &= parts[p].nlabel != NULL;
		total += parts[p].k;
	}
	if (aim_results_alloc(out, m, k, parts[0].qlabel != NULL, nlab))
		return AIM_ERR;
	cand *c = malloc(sizeof(cand) * (size_t)total);
	if (!c) {
		aim_results_free(out);
		return aim_error("out of memory");
	}
	for (int64_t i = 0; i < m; i++) {
		int n = 0;
		for (int p = 0; p < nparts; p++)
			for (int j = 0; j < parts[p].k; j++) {
				int64_t at = i * parts[p].k + j;
				if (parts[p].nid[at] >= 0 || parts[p].nkey[at] >= 0)
					c[n++] = (cand){parts[p].score[at], parts[p].nkey[at], p, at};
			}
		qsort(c, (size_t)n, sizeof(cand), cmp_cand);
		out->qid[i] = parts[0].qid[i];
		out->qname[i] = strdup(parts[0].qname[i]);
		if (out->qlabel)
			out->qlabel[i] = parts[0].qlabel[i];
		for (int j = 0; j < k && j < n; j++) {
			const aim_results *src = &parts[c[j].part];
			int64_t o = i * k + j;
			out->score[o] = c[j].score;
			out->nkey[o] = c[j].key;
			out->nid[o] = src->nid[c[j].at];
			if (out->nlabel)
				out->nlabel[o] = src->nlabel[c[j].at];
			if (src->nname[c[j].at])
				out->nname[o] = strdup(src->nname[c[j].at]);
		}
	}
	free(c);
	if (parts[0].classes)
		out->classes = strdup(parts[0].classes);
	return 0;
}

int64_t aim_knn_rank(const float *scores, const int64_t *labels, int k, double T,
		     int64_t label, int64_t nclasses, double *work)
{
	for (int64_t c = 0; c < nclasses; c++)
		work[c] = 0;
	for (int i = 0; i < k; i++)
		if (labels[i] >= 0 && labels[i] < nclasses && isfinite(scores[i]))
			work[labels[i]] += exp((double)scores[i] / T);
	/* A class no neighbour voted for is never predicted. */
	if (label < 0 || label >= nclasses || work[label] == 0)
		return INT64_MAX;
	int64_t rank = 0;
	for (int64_t c = 0; c < nclasses; c++)
		rank += work[c] > work[label] || (work[c] == work[label] && c < label);
	return rank;
}

int aim_results_keep(aim_results *acc, const aim_results *r, int64_t most)
{
	int64_t m0 = acc->m, add = r->m < most - m0 ? r->m : most - m0;
	if (add <= 0)
		return 0;
	aim_results n;
	if (aim_results_alloc(&n, m0 + add, r->k, 0, 0))
		return AIM_ERR;
	for (int64_t i = 0; i < m0 + add; i++) {
		const aim_results *src = i < m0 ? acc : r;
		int64_t si = i < m0 ? i : i - m0;
		n.qname[i] = strdup(src->qname[si]);
		for (int j = 0; j < r->k; j++) {
			int64_t a = si * r->k + j;
			n.score[i * r->k + j] = src->score[a];
			n.nname[i * r->k + j] = src->nname[a] ? strdup(src->nname[a]) : NULL;
		}
	}
	aim_results_free(acc);
	*acc = n;
	return 0;
}

void aim_results_write_tsv(FILE *fp, const aim_results *r)
{
	for (int64_t i = 0; i < r->m; i++)
		for (int j = 0; j < r->k; j++) {
			int64_t a = i * r->k + j;
			if (r->nname[a])
				fprintf(fp, "%s\t%d\t%s\t%.9g\n", r->qname[i], j + 1, r->nname[a],
					r->score[a]);
		}
}

/* Only classes some neighbour voted for can outrank the true one, so the
 * classes seen here are enough. */
int aim_knn_tally_add(aim_knn_tally *t, const aim_results *r, double temperature)
{
	if (!r->qlabel || !r->nlabel)
		return aim_error("a k-NN vote needs labels on the queries and on the bank");
	t->k = r->k;
	for (int64_t i = 0; i < r->m; i++) {
		if (r->qlabel[i] < 0)
			continue;
		int64_t nc = r->qlabel[i] + 1;
		for (int j = 0; j < r->k; j++)
			nc = r->nlabel[i * r->k + j] + 1 > nc ? r->nlabel[i * r->k + j] + 1 : nc;
		if (nc > t->cap) {
			double *w = realloc(t->work, sizeof(double) * (size_t)nc);
			if (!w)
				return aim_error("out of memory");
			t->work = w;
			t->cap = nc;
		}
		int64_t rank = aim_knn_rank(r->score + i * r->k, r->nlabel + i * r->k, r->k,
					    temperature, r->qlabel[i], nc, t->work);
		t->nlab++;
		t->top1 += rank == 0;
		t->top5 += rank < 5;
	}
	return AIM_OK;
}
