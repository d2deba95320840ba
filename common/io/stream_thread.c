/* The stream writer's thread (stream_thread.h). */
#include "stream_thread.h"

#include <stdio.h>

#include "err.h"

static void *writer_main(void *arg)
{
	aim_writer_thread *out = arg;
	pthread_mutex_lock(&out->mu);
	for (;;) {
		while (!out->pending && !out->quit)
			pthread_cond_wait(&out->cv, &out->mu);
		if (!out->pending)
			break;
		aim_record *rec = out->pending;
		int failed = out->status != AIM_OK;
		pthread_mutex_unlock(&out->mu);
		int rc = failed ? AIM_OK : aim_writer_write(out->w, rec);
		aim_record_free(rec);
		pthread_mutex_lock(&out->mu);
		if (rc < 0 && out->status == AIM_OK) {
			out->status = rc;
			snprintf(out->err, sizeof out->err, "%s", aim_errmsg());
		}
		out->pending = NULL;
		pthread_cond_broadcast(&out->cv);
	}
	pthread_mutex_unlock(&out->mu);
	return NULL;
}

int aim_writer_thread_start(aim_writer_thread *t, aim_writer *w)
{
	*t = (aim_writer_thread){.w = w};
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if (pthread_create(&t->thread, NULL, writer_main, t))
		return aim_error("cannot start the writer thread");
	return AIM_OK;
}

int aim_writer_thread_wait(aim_writer_thread *t)
{
	pthread_mutex_lock(&t->mu);
	while (t->pending)
		pthread_cond_wait(&t->cv, &t->mu);
	int status = t->status;
	pthread_mutex_unlock(&t->mu);
	if (status == AIM_EPIPE)
		return AIM_EPIPE;
	if (status < 0)
		return aim_error("%s", t->err);
	return AIM_OK;
}

int aim_writer_thread_submit(aim_writer_thread *t, aim_record *r)
{
	int rc = aim_writer_thread_wait(t);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&t->mu);
	t->pending = r;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return AIM_OK;
}

int aim_writer_thread_stop(aim_writer_thread *t)
{
	int rc = aim_writer_thread_wait(t);
	pthread_mutex_lock(&t->mu);
	t->quit = 1;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	return rc;
}
