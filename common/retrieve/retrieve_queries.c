/* Queries read but not yet answered (retrieve.h): their prepared vectors
 * and identities, gathered record by record. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "retrieve.h"

int aim_queries_add(aim_queries *pd, const aim_record *rec, const aim_prep *p, int64_t seen,
		    const aim_bank *b, const char *what)
{
	aim_tensor *f = aim_record_find(rec, "features");
	if (!f)
		return aim_error("%s: no features tensor", what);
	int64_t D, m = aim_prep_features(f, p, seen, NULL, &D, what);
	if (m < 0)
		return AIM_ERR;
	if (D != b->dim)
		return aim_error("%s: queries have dimension %lld, the bank %s has %lld", what, (long long)D,
			b->source, (long long)b->dim);
	aim_tensor *id = aim_record_find(rec, "id"), *lab = aim_record_find(rec, "label");
	if ((id && (id->dtype != AIM_I64 || id->ndim != 1 || id->shape[0] != m)) ||
	    (lab && (lab->dtype != AIM_I64 || lab->ndim != 1 || lab->shape[0] != m)))
		return aim_error("%s: id and label must be I64 [%lld]", what, (long long)m);
	int64_t n = pd->m + m;
	if (n > pd->cap) {
		pd->cap = n > 2 * pd->cap ? n : 2 * pd->cap;
		pd->q = realloc(pd->q, sizeof(float) * (size_t)(pd->cap * D));
		pd->id = realloc(pd->id, sizeof(int64_t) * (size_t)pd->cap);
		pd->label = realloc(pd->label, sizeof(int64_t) * (size_t)pd->cap);
		pd->name = realloc(pd->name, sizeof(char *) * (size_t)pd->cap);
		if (!pd->q || !pd->id || !pd->label || !pd->name)
			return aim_error("out of memory (%lld queries)", (long long)n);
	}
	pd->dim = D;
	if (aim_prep_features(f, p, seen, pd->q + pd->m * D, &D, what) < 0 ||
	    aim_names_parse(rec, m, pd->name + pd->m, what))
		return AIM_ERR;
	pd->named |= aim_record_get_meta(rec, "aim.names") != NULL;
	pd->labelled |= lab != NULL;
	for (int64_t i = 0; i < m; i++) {
		int64_t at = pd->m + i;
		pd->id[at] = id ? aim_i64_at(id->data, i) : seen + i;
		pd->label[at] = lab ? aim_i64_at(lab->data, i) : -1;
		if (!pd->name[at]) {
			char buf[32];
			snprintf(buf, sizeof buf, "%" PRId64, pd->id[at]);
			pd->name[at] = strdup(buf);
		}
	}
	pd->m = n;
	return 0;
}

void aim_queries_free(aim_queries *pd)
{
	free(pd->q), free(pd->id), free(pd->label), free(pd->name);
}
