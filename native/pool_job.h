/* Thread-pool jobs of strata_native's N-API surface (blob_napi.c, rs_napi.c): queue one, call its callback, free it. */
#ifndef STRATA_POOL_JOB_H
#define STRATA_POOL_JOB_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* What every job holds: its work, the Buffer it reads or writes (kept alive), the callback, its output. */
typedef struct pool_job {
  napi_async_work work;
  napi_ref input, callback;
  uint8_t *out;
  size_t out_len;
  const char *problem;
} pool_job;

/* Reads a Buffer argument (of exactly `want` bytes unless want is 0); throws a TypeError and returns 0 otherwise. */
int pool_buffer_arg(napi_env env, napi_value v, const uint8_t **data, size_t *len, size_t want);
/* An Error with `problem` as message and `code` (may be NULL) as code. */
void pool_error(napi_env env, const char *code, const char *problem, napi_value *error);
/* Queues `job` (calloc'ed, freed by pool_job_finish), keeping `input` and `callback` alive until then. */
napi_value pool_job_queue(napi_env env, pool_job *job, napi_value input, napi_value callback, const char *name,
                          napi_async_execute_callback execute, napi_async_complete_callback complete);
/* Calls the callback with args, then frees the job. */
void pool_job_finish(napi_env env, pool_job *job, size_t argc, napi_value *args);

#endif
