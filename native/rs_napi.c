/*
 * The N-API surface of rs.c, part of strata_native (src/native.ts), each a thread-pool job
 * that works on `stripe` in place (it must stay untouched until the callback):
 *   rsEncode(stripe, k, m, shardSize, callback(err))   fills the parity shards
 *   rsRebuild(stripe, k, m, shardSize, lost, callback(err))   rebuilds the shards whose
 *     indices the Buffer `lost` holds; err (code "DAMAGED") when there is too little parity.
 */
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "napi_return.h"
#include "pool_job.h"
#include "rs.h"
#include "rs_napi.h"

typedef struct rs_job {
  pool_job base;
  uint8_t *stripe;
  int32_t k, m;
  size_t shard;
  uint8_t lost[256];
  int nlost;
  int rebuild;
} rs_job;

static void rs_execute(napi_env env, void *arg) {
  (void)env;
  rs_job *job = arg;
  if (job->rebuild) job->base.problem = rs_rebuild(job->stripe, job->k, job->m, job->shard, job->lost, job->nlost);
  else rs_encode(job->stripe, job->k, job->m, job->shard);
}

static void rs_complete(napi_env env, napi_status status, void *arg) {
  rs_job *job = arg;
  napi_value args[1];
  napi_get_undefined(env, &args[0]);
  if (status != napi_ok || job->base.problem) pool_error(env, "DAMAGED", job->base.problem ? job->base.problem : "parity job failed", &args[0]);
  pool_job_finish(env, &job->base, 1, args);
}

/* Reads (stripe, k, m, shardSize[, lost], callback) into a new job; NULL after throwing. */
static rs_job *rs_args(napi_env env, napi_callback_info info, int rebuild, napi_value *stripe, napi_value *callback) {
  size_t argc = 6, want = rebuild ? 6 : 5;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, rebuild ? "rsRebuild(stripe, k, m, shardSize, lost, callback)" : "rsEncode(stripe, k, m, shardSize, callback)");
    return NULL;
  }
  rs_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  const uint8_t *data, *lost;
  size_t len, nlost = 0;
  double shard = 0;
  job->rebuild = rebuild;
  napi_get_value_int32(env, argv[1], &job->k);
  napi_get_value_int32(env, argv[2], &job->m);
  napi_get_value_double(env, argv[3], &shard);
  if (!pool_buffer_arg(env, argv[0], &data, &len, 0) || (rebuild && !pool_buffer_arg(env, argv[4], &lost, &nlost, 0))) {
    free(job);
    return NULL;
  }
  job->shard = (size_t)shard;
  if (job->k < 1 || job->m < 1 || job->k + job->m > 256 || shard < 1 || len != (size_t)(job->k + job->m) * job->shard || nlost > 256) {
    free(job);
    napi_throw_range_error(env, NULL, "a stripe is k + m <= 256 shards of shardSize bytes");
    return NULL;
  }
  job->stripe = (uint8_t *)data;
  if (rebuild) memcpy(job->lost, lost, nlost);
  job->nlost = (int)nlost;
  *stripe = argv[0];
  *callback = argv[want - 1];
  return job;
}

static napi_value rs_start(napi_env env, napi_callback_info info, int rebuild) {
  napi_value stripe, callback;
  rs_job *job = rs_args(env, info, rebuild, &stripe, &callback);
  if (!job) return NULL;
  return pool_job_queue(env, &job->base, stripe, callback, rebuild ? "strata.rsRebuild" : "strata.rsEncode", rs_execute, rs_complete);
}

static napi_value rs_encode_napi(napi_env env, napi_callback_info info) {
  return rs_start(env, info, 0);
}

static napi_value rs_rebuild_napi(napi_env env, napi_callback_info info) {
  return rs_start(env, info, 1);
}

void rs_napi_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "rsEncode", NULL, rs_encode_napi, NULL, NULL, NULL, napi_default, NULL },
    { "rsRebuild", NULL, rs_rebuild_napi, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
