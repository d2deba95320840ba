/* Stamps of listed items (imgstamp.h). */
#include "imgstamp.h"

#include <stdlib.h>

#include "err.h"
#include "fileio.h"

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

int aim_imglist_list(const aim_imglist *l, const unsigned char *selected, int hash,
		     const char *path)
{
	aim_stamp *st = malloc(sizeof *st * (size_t)l->n);
	aim_outfile f;
	if (!st)
		return aim_error("out of memory");
	if (aim_imglist_stamps(l, selected, hash, st) < 0 || aim_out_open(&f, path, 0) < 0) {
		free(st);
		return AIM_ERR;
	}
	for (int64_t i = 0; i < l->n; i++)
		if (selected[i])
			aim_manifest_put(f.fp, l->items[i].name, &st[i], hash);
	free(st);
	return aim_out_commit(&f);
}

int64_t aim_imglist_drop_done(const aim_imglist *l, unsigned char *selected,
			      const aim_manifest *done, int hash)
{
	/* Only the items the manifest names need a stat (and a hash). */
	unsigned char *ask = calloc((size_t)l->n, 1);
	aim_stamp *st = malloc(sizeof *st * (size_t)l->n);
	int64_t *at = malloc(sizeof *at * (size_t)l->n);
	int64_t skipped = 0;
	if (!ask || !st || !at) {
		skipped = aim_error("out of memory");
		goto out;
	}
	for (int64_t i = 0; i < l->n; i++)
		if (selected[i] && (at[i] = aim_manifest_find(done, l->items[i].name)) >= 0)
			ask[i] = 1;
	if (aim_imglist_stamps(l, ask, hash, st) < 0) {
		skipped = AIM_ERR;
		goto out;
	}
	for (int64_t i = 0; i < l->n; i++)
		if (ask[i] && aim_stamp_same(&done->e[at[i]].st, &st[i])) {
			selected[i] = 0;
			skipped++;
		}
out:
	free(ask), free(st), free(at);
	return skipped;
}
