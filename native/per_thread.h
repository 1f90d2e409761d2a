/*
 * A value made once per thread when first asked for, and destroyed when the thread ends
 * (zstd's contexts: libuv's pool threads live on, but the mount's threads end at every
 * unmount). Declare one with PER_THREAD(make, destroy).
 */
#ifndef STRATA_PER_THREAD_H
#define STRATA_PER_THREAD_H

#include <pthread.h>

typedef struct per_thread {
  pthread_mutex_t lock;
  int ready;
  pthread_key_t key;
  void *(*make)(void);
  void (*destroy)(void *);
} per_thread;

#define PER_THREAD(make_fn, destroy_fn) { PTHREAD_MUTEX_INITIALIZER, 0, 0, (make_fn), (destroy_fn) }

/* This thread's value (made now if it has none), or NULL if it cannot be made. */
static inline void *per_thread_get(per_thread *p) {
  pthread_mutex_lock(&p->lock);
  if (!p->ready) p->ready = pthread_key_create(&p->key, p->destroy) == 0;
  pthread_mutex_unlock(&p->lock);
  if (!p->ready) return NULL;
  void *value = pthread_getspecific(p->key);
  if (!value && (value = p->make())) pthread_setspecific(p->key, value);
  return value;
}

#endif
