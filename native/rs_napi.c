/*
 * The N-API surface of rs.c, part of strata_native (src/native.ts), each a thread-pool job
 * that works on `stripe` in place (it must stay untouched until the callback):
 *   rsRebuild(stripe, k, m, shardSize, lost, callback(err))   rebuilds the shards whose
 *     indices the Buffer `lost` holds; err (code "DAMAGED") when there is too little parity.
 *   crc32c(data) → the CRC-32C of data (on the JS thread: healing hashes a few shards)
 *   rsPackParity(pack, shardSize, stripes, m, out, callback(err))   the shard hashes and parity
 *     shards of a whole pack (rs_pack_parity) into `out`, hashes first; neither Buffer may
 *     change until the callback.
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
  /* rsPackParity: the pack is read on the pool thread, so it is held too */
  napi_ref pack_ref;
  const uint8_t *pack;
  size_t pack_len, out_len;
  int32_t stripes;
} rs_job;

static void rs_execute(napi_env env, void *arg) {
  (void)env;
  rs_job *job = arg;
  if (job->pack) {
    size_t shards = job->pack_len ? (job->pack_len + job->shard - 1) / job->shard : 1;
    size_t hashes = (shards + (size_t)job->stripes * (size_t)job->m) * RS_HASH_BYTES;
    if (job->out_len != hashes + (size_t)job->stripes * (size_t)job->m * job->shard) job->base.problem = "has an output Buffer of the wrong size";
    else job->base.problem = rs_pack_parity(job->pack, job->pack_len, job->shard, job->stripes, job->m, job->stripe, job->stripe + hashes);
  } else {
    job->base.problem = rs_rebuild(job->stripe, job->k, job->m, job->shard, job->lost, job->nlost);
  }
}

static void rs_complete(napi_env env, napi_status status, void *arg) {
  rs_job *job = arg;
  napi_value args[1];
  napi_get_undefined(env, &args[0]);
  if (status != napi_ok || job->base.problem) pool_error(env, "DAMAGED", job->base.problem ? job->base.problem : "parity job failed", &args[0]);
  if (job->pack_ref) napi_delete_reference(env, job->pack_ref);
  pool_job_finish(env, &job->base, 1, args);
}

static napi_value rs_rebuild_napi(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
    napi_throw_type_error(env, NULL, "rsRebuild(stripe, k, m, shardSize, lost, callback)");
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
  napi_get_value_int32(env, argv[1], &job->k);
  napi_get_value_int32(env, argv[2], &job->m);
  napi_get_value_double(env, argv[3], &shard);
  if (!pool_buffer_arg(env, argv[0], &data, &len, 0) || !pool_buffer_arg(env, argv[4], &lost, &nlost, 0)) {
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
  memcpy(job->lost, lost, nlost);
  job->nlost = (int)nlost;
  return pool_job_queue(env, &job->base, argv[0], argv[5], "strata.rsRebuild", rs_execute, rs_complete);
}

static napi_value rs_pack_parity_napi(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
    napi_throw_type_error(env, NULL, "rsPackParity(pack, shardSize, stripes, m, out, callback)");
    return NULL;
  }
  rs_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  const uint8_t *out;
  double shard = 0;
  if (!pool_buffer_arg(env, argv[0], &job->pack, &job->pack_len, 0) || !pool_buffer_arg(env, argv[4], &out, &job->out_len, 0)) {
    free(job);
    return NULL;
  }
  napi_get_value_double(env, argv[1], &shard);
  napi_get_value_int32(env, argv[2], &job->stripes);
  napi_get_value_int32(env, argv[3], &job->m);
  if (shard < 1 || job->stripes < 1 || job->m < 1 || job->m > 224) {
    free(job);
    napi_throw_range_error(env, NULL, "rsPackParity: a shard size, at least one stripe, 1 to 224 parity shards");
    return NULL;
  }
  job->shard = (size_t)shard;
  job->stripe = (uint8_t *)out;
  napi_create_reference(env, argv[0], 1, &job->pack_ref);
  return pool_job_queue(env, &job->base, argv[4], argv[5], "strata.rsPackParity", rs_execute, rs_complete);
}

static napi_value crc32c_napi(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  const uint8_t *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !pool_buffer_arg(env, argv[0], &data, &len, 0)) return NULL;
  NAPI_OR_RETURN_NULL(napi_create_uint32(env, rs_crc32c(data, len), &out));
  return out;
}

void rs_napi_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "rsRebuild", NULL, rs_rebuild_napi, NULL, NULL, NULL, napi_default, NULL },
    { "rsPackParity", NULL, rs_pack_parity_napi, NULL, NULL, NULL, napi_default, NULL },
    { "crc32c", NULL, crc32c_napi, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
