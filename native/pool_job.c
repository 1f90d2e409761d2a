/* Thread-pool jobs shared by strata_native's N-API files (pool_job.h). */
#include "pool_job.h"

#include <stdbool.h>
#include <stdlib.h>

#include "napi_return.h"

int pool_buffer_arg(napi_env env, napi_value v, const uint8_t **data, size_t *len, size_t want) {
  bool is = false;
  void *p = NULL;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, &p, len) != napi_ok || (want && *len != want)) {
    napi_throw_type_error(env, NULL, want ? "expected a 32-byte Buffer" : "expected a Buffer");
    return 0;
  }
  *data = p;
  return 1;
}

void pool_error(napi_env env, const char *code, const char *problem, napi_value *error) {
  napi_value message, code_value = NULL;
  napi_create_string_utf8(env, problem, NAPI_AUTO_LENGTH, &message);
  if (code) napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_create_error(env, code_value, message, error);
}

void pool_job_finish(napi_env env, pool_job *job, size_t argc, napi_value *args) {
  napi_value cb, global;
  napi_get_reference_value(env, job->callback, &cb);
  napi_get_global(env, &global);
  napi_call_function(env, global, cb, argc, args, NULL);
  napi_delete_reference(env, job->callback);
  napi_delete_reference(env, job->input);
  napi_delete_async_work(env, job->work);
  free(job);
}

napi_value pool_job_queue(napi_env env, pool_job *job, napi_value input, napi_value callback, const char *name,
                          napi_async_execute_callback execute, napi_async_complete_callback complete) {
  napi_value resource;
  napi_create_reference(env, input, 1, &job->input);
  napi_create_reference(env, callback, 1, &job->callback);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  NAPI_OR_RETURN_NULL(napi_create_async_work(env, NULL, resource, execute, complete, job, &job->work));
  NAPI_OR_RETURN_NULL(napi_queue_async_work(env, job->work));
  return NULL;
}
