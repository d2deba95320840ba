/* A stream writer in its own thread, one record behind its caller: while
 * the caller fills the next record, the previous one is serialised,
 * compressed and written. After the first failure nothing more is
 * written; every call from then on returns it. */
#ifndef AIM_STREAM_THREAD_H
#define AIM_STREAM_THREAD_H

#include <pthread.h>

#include "record.h"
#include "stream.h"

typedef struct {
	aim_writer *w;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	aim_record *pending;
	int quit, status;
	char err[512];
} aim_writer_thread;

/* Start the thread writing to w (w stays the caller's to close). */
int aim_writer_thread_start(aim_writer_thread *t, aim_writer *w);
/* Wait until the thread is idle: AIM_OK, AIM_EPIPE (the reader downstream
 * has gone) or AIM_ERR with the write's message. */
int aim_writer_thread_wait(aim_writer_thread *t);
/* Wait, then hand r to the thread, which writes it and frees it
 * (aim_record_free); r's tensors must stay put until the next wait. On an
 * earlier failure r is not taken (returns that failure). */
int aim_writer_thread_submit(aim_writer_thread *t, aim_record *r);
/* Wait, end the thread and join it; returns what the wait returned. */
int aim_writer_thread_stop(aim_writer_thread *t);

#endif
