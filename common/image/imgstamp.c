/* Stamps of listed items (imgstamp.h). */
#include "imgstamp.h"

#include <stdlib.h>

#include "err.h"

int aim_imglist_stamps(const aim_imglist *l, const unsigned char *selected, int hash,
		       aim_stamp *out)
{
	aim_stamp *shard = calloc((size_t)(l->nshards ? l->nshards : 1), sizeof *shard);
	if (!shard)
		return aim_error("out of memory");
#pragma omp parallel for schedule(dynamic, 1)
	for (int s = 0; s < l->nshards; s++)
		if (aim_stamp_file(l->shards[s], hash, &shard[s]))
			shard[s] = AIM_STAMP_UNKNOWN;
#pragma omp parallel for schedule(dynamic, 16)
	for (int64_t i = 0; i < l->n; i++) {
		const aim_imgitem *it = &l->items[i];
		if (selected && !selected[i])
			continue;
		if (it->shard >= 0)
			out[i] = shard[it->shard];
		else if (aim_stamp_file(it->name, hash, &out[i]))
			out[i] = AIM_STAMP_UNKNOWN;
	}
	free(shard);
	return 0;
}
