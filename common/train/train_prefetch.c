/* Training batches read one step ahead (train_prefetch.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "train_prefetch.h"

/* Pinned memory from the backend when it offers it, else malloc; the
 * slot remembers which, so that the right call frees it. */
static int alloc_slot(const aim_prefetch *p, aim_prefetch_slot *s, size_t bytes)
{
	s->x = p->be && p->be->host_alloc ? p->be->host_alloc(bytes) : NULL;
	s->pinned = s->x != NULL;
	if (!s->x)
		s->x = malloc(bytes);
	s->gidx = malloc(sizeof(uint64_t) * (size_t)p->batch);
	return s->x && s->gidx ? 0 : -1;
}

static void free_slot(const aim_prefetch *p, aim_prefetch_slot *s)
{
	if (s->pinned)
		p->be->host_free(s->x);
	else
		free(s->x);
	free(s->gidx);
}

/* The reader: fill the slots in turn, each as soon as the consumer has
 * let go of it; stop after a short batch or an error. Cancellation is
 * allowed only while reading (the mutex is not held then), so a reader
 * blocked on a silent pipe can be stopped. */
static void *reader(void *arg)
{
	aim_prefetch *p = arg;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	for (int i = 0;; i ^= 1) {
		aim_prefetch_slot *s = &p->slot[i];
		pthread_mutex_lock(&p->mu);
		while (s->full && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		p->reading = 1;
		pthread_mutex_unlock(&p->mu);

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		int got = aim_source_next(p->src, s->x, s->gidx, p->batch);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (got < 0)
			snprintf(s->err, sizeof s->err, "%s", aim_errmsg()); /* errors are per thread */

		pthread_mutex_lock(&p->mu);
		s->got = got;
		s->epoch = p->src->epoch;
		s->full = 1;
		p->reading = 0;
		int last = got < p->batch;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (last)
			return NULL;
	}
}

int aim_prefetch_start(aim_prefetch *p, aim_source *src, int batch, const aim_backend *be)
{
	memset(p, 0, sizeof *p);
	p->src = src;
	p->be = be;
	p->batch = batch;
	p->out = -1;
	const size_t per = (size_t)src->geom.K * src->geom.P;
	for (int i = 0; i < 2; i++) {
		if (alloc_slot(p, &p->slot[i], sizeof(float) * per * (size_t)batch)) {
			aim_prefetch_stop(p);
			return aim_error("out of memory for two batches of %d images", batch);
		}
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, reader, p)) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		aim_prefetch_stop(p);
		return aim_error("cannot start the input thread");
	}
	p->started = 1;
	return 0;
}

int aim_prefetch_next(aim_prefetch *p, const float **x, const uint64_t **gidx, int *epoch)
{
	pthread_mutex_lock(&p->mu);
	/* The slot handed out last time is free again. */
	if (p->out >= 0) {
		p->slot[p->out].full = 0;
		pthread_cond_broadcast(&p->cv);
	}
	aim_prefetch_slot *s = &p->slot[p->take];
	while (!s->full)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	p->out = p->take;
	p->take ^= 1;
	if (s->got < 0)
		return aim_error("%s", s->err);
	*x = s->x;
	*gidx = s->gidx;
	*epoch = s->epoch;
	return s->got;
}

void aim_prefetch_stop(aim_prefetch *p)
{
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		if (p->reading)
			pthread_cancel(p->thread);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
	}
	for (int i = 0; i < 2; i++)
		free_slot(p, &p->slot[i]);
	memset(p, 0, sizeof *p);
}
