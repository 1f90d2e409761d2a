/*
 * The N-API surface of blob_open.c and blob_seal.c, part of strata_native (src/native.ts):
 *   openRecord(sealed, encryptionKey | null) → plaintext
 *   openBlob(sealed, encryptionKey | null, idKey, compressed, rawLength, id) → raw bytes
 *     Both throw an Error whose message says what is wrong ("failed authentication: …")
 *     and whose code is "DAMAGED"; the caller names the object.
 *   openBlobAsync(…the same…, callback(err, raw)): openBlob in a thread-pool job, for large blobs.
 *   sealBlob(data, encryptionKey | null, compression, callback(err, sealed, compressed))
 *     compression: 0 none, 1 LZ4, 2 zstd (blob_seal.h)
 *   sealBlobSync(data, encryptionKey | null, compression) → [sealed, compressed], on the JS thread
 *   sealingKeys(encryptionKey | null, idKey, minCompress, compression) → an opaque handle for jobs that
 *     hash and seal what they read (readSmall in strata_native.c, via blob_napi_sealing)
 *     Compresses and seals in a thread-pool job; `data` must not change until the callback.
 * Threads: the JS thread, and the jobs of openBlobAsync and sealBlob on the pool.
 */
#include <node_api.h>
#include <stdbool.h>
#include <string.h>

#include <stdlib.h>

#include "blob_open.h"
#include "blob_napi.h"
#include "blob_seal.h"
#include "napi_return.h"
#include "pool_job.h"

/* Reads the encryption key (or null: an unencrypted repository) into k. */
static int keys_arg(napi_env env, napi_value v, blob_keys *k) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  memset(k, 0, sizeof *k);
  if (type == napi_null || type == napi_undefined) return 1;
  const uint8_t *key;
  size_t len;
  if (!pool_buffer_arg(env, v, &key, &len, BLOB_KEY_BYTES)) return 0;
  k->encrypted = 1;
  memcpy(k->encryption, key, BLOB_KEY_BYTES);
  return 1;
}

static napi_value damaged(napi_env env, const char *problem) {
  napi_throw_error(env, "DAMAGED", problem);
  return NULL;
}

static napi_value open_record(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  blob_keys k;
  const uint8_t *sealed;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return damaged(env, "openRecord(sealed, key)");
  if (!pool_buffer_arg(env, argv[0], &sealed, &len, 0) || !keys_arg(env, argv[1], &k)) return NULL;
  size_t plain = blob_plain_length(&k, len);
  void *data;
  if (napi_create_buffer(env, plain, &data, &out) != napi_ok) return NULL;
  const char *problem = blob_open_record(&k, sealed, len, data);
  return problem ? damaged(env, problem) : out;
}

static napi_value open_blob(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], out;
  blob_keys k;
  const uint8_t *sealed, *id_key, *id;
  size_t len, key_len, id_len;
  bool compressed = false;
  double raw_length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) return damaged(env, "openBlob(sealed, key, idKey, compressed, rawLength, id)");
  if (!pool_buffer_arg(env, argv[0], &sealed, &len, 0) || !keys_arg(env, argv[1], &k) ||
      !pool_buffer_arg(env, argv[2], &id_key, &key_len, BLOB_KEY_BYTES) || !pool_buffer_arg(env, argv[5], &id, &id_len, BLOB_ID_BYTES)) {
    return NULL;
  }
  memcpy(k.id, id_key, BLOB_KEY_BYTES);
  napi_get_value_bool(env, argv[3], &compressed);
  napi_get_value_double(env, argv[4], &raw_length);
  if (raw_length < 0 || raw_length > (double)(1u << 31)) return damaged(env, "is larger than any blob Strata writes");
  void *data;
  if (napi_create_buffer(env, (size_t)raw_length, &data, &out) != napi_ok) return NULL;
  const char *problem = blob_open(&k, sealed, len, compressed, data, (size_t)raw_length, id);
  return problem ? damaged(env, problem) : out;
}

static void free_malloced(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/*
 * args[0] and args[1] for the callback: undefined and the job's output as a Buffer (handed to JS
 * without a copy, freed when collected; copied where external buffers are not allowed), or an
 * Error (code `code`) and undefined.
 */
napi_status blob_napi_buffer(napi_env env, uint8_t **bytes, size_t len, napi_value *out) {
  if (napi_create_external_buffer(env, len, *bytes, free_malloced, NULL, out) == napi_ok) {
    *bytes = NULL; /* the Buffer owns it now */
    return napi_ok;
  }
  return napi_create_buffer_copy(env, len, *bytes, NULL, out);
}

static void job_result(napi_env env, napi_status status, pool_job *job, const char *code, const char *failed, napi_value *args) {
  napi_get_undefined(env, &args[0]);
  napi_get_undefined(env, &args[1]);
  if (status != napi_ok || job->problem) pool_error(env, code, job->problem ? job->problem : failed, &args[0]);
  else if (blob_napi_buffer(env, &job->out, job->out_len, &args[1]) != napi_ok) pool_error(env, NULL, "out of memory", &args[0]);
  free(job->out);
}

typedef struct seal_job {
  pool_job base;
  const uint8_t *data;
  size_t len;
  blob_keys keys;
  int32_t compression;
  int compressed;
} seal_job;

static void seal_execute(napi_env env, void *arg) {
  (void)env;
  seal_job *job = arg;
  pool_job *base = &job->base;
  base->problem = blob_seal_new(&job->keys, job->data, job->len, job->compression, &base->out, &base->out_len, &job->compressed);
}

static void seal_complete(napi_env env, napi_status status, void *arg) {
  seal_job *job = arg;
  napi_value args[3];
  job_result(env, status, &job->base, NULL, "cannot be sealed (job failed)", args);
  napi_get_boolean(env, job->compressed, &args[2]);
  pool_job_finish(env, &job->base, 3, args);
}

static napi_value seal_blob(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "sealBlob(data, key, compression, callback)");
    return NULL;
  }
  seal_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (!pool_buffer_arg(env, argv[0], &job->data, &job->len, 0) || !keys_arg(env, argv[1], &job->keys)) {
    free(job);
    return NULL;
  }
  napi_get_value_int32(env, argv[2], &job->compression);
  return pool_job_queue(env, &job->base, argv[0], argv[3], "strata.sealBlob", seal_execute, seal_complete);
}

/* sealBlobSync(data, key, compression) → [sealed, compressed]: for small blobs, cheaper than a hand-off to the pool. */
static napi_value seal_blob_sync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result, sealed, compressed;
  const uint8_t *data;
  size_t len, out_len = 0;
  blob_keys keys;
  int32_t compression = 0;
  int was_compressed = 0;
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !pool_buffer_arg(env, argv[0], &data, &len, 0) || !keys_arg(env, argv[1], &keys)) return NULL;
  napi_get_value_int32(env, argv[2], &compression);
  uint8_t *out = NULL;
  const char *problem = blob_seal_new(&keys, data, len, compression, &out, &out_len, &was_compressed);
  void *copy;
  if (!problem && napi_create_buffer_copy(env, out_len, out, &copy, &sealed) != napi_ok) problem = "cannot be sealed (out of memory)";
  free(out);
  memset(&keys, 0, sizeof keys);
  if (problem) {
    napi_throw_error(env, NULL, problem);
    return NULL;
  }
  napi_get_boolean(env, was_compressed, &compressed);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, sealed);
  napi_set_element(env, result, 1, compressed);
  return result;
}

typedef struct open_job {
  pool_job base;
  const uint8_t *sealed;
  size_t len;
  blob_keys keys;
  bool compressed;
  uint8_t id[BLOB_ID_BYTES];
} open_job;

static void open_execute(napi_env env, void *arg) {
  (void)env;
  open_job *job = arg;
  pool_job *base = &job->base;
  base->out = malloc(base->out_len ? base->out_len : 1);
  base->problem = base->out ? blob_open(&job->keys, job->sealed, job->len, job->compressed, base->out, base->out_len, job->id)
                            : "cannot be opened (out of memory)";
}

static void open_complete(napi_env env, napi_status status, void *arg) {
  open_job *job = arg;
  napi_value args[2];
  job_result(env, status, &job->base, "DAMAGED", "cannot be opened (job failed)", args);
  pool_job_finish(env, &job->base, 2, args);
}

static napi_value open_blob_async(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  const uint8_t *id_key, *id;
  size_t key_len, id_len;
  double raw_length = 0;
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) return damaged(env, "openBlobAsync(sealed, key, idKey, compressed, rawLength, id, callback)");
  open_job *job = calloc(1, sizeof *job);
  if (!job) return damaged(env, "cannot be opened (out of memory)");
  if (!pool_buffer_arg(env, argv[0], &job->sealed, &job->len, 0) || !keys_arg(env, argv[1], &job->keys) ||
      !pool_buffer_arg(env, argv[2], &id_key, &key_len, BLOB_KEY_BYTES) || !pool_buffer_arg(env, argv[5], &id, &id_len, BLOB_ID_BYTES)) {
    free(job);
    return NULL;
  }
  memcpy(job->keys.id, id_key, BLOB_KEY_BYTES);
  memcpy(job->id, id, BLOB_ID_BYTES);
  napi_get_value_bool(env, argv[3], &job->compressed);
  napi_get_value_double(env, argv[4], &raw_length);
  if (raw_length < 0 || raw_length > (double)(1u << 31)) {
    free(job);
    return damaged(env, "is larger than any blob Strata writes");
  }
  job->base.out_len = (size_t)raw_length;
  return pool_job_queue(env, &job->base, argv[0], argv[6], "strata.openBlob", open_execute, open_complete);
}

/* What sealingKeys hands to JS: the keys, and the size from which blobs are worth compressing. */
typedef struct sealing {
  blob_keys keys;
  size_t min_compress;
  int compression;
} sealing;

/* Marks the externals sealingKeys makes, so that no other external is ever read as keys. */
static const napi_type_tag SEALING_TAG = { 0x5374726174615365ull, 0x616c696e674b6579ull };

static void free_sealing(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  memset(data, 0, sizeof(sealing)); /* keys do not linger in freed memory */
  free(data);
}

static napi_value sealing_keys(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  const uint8_t *id_key;
  size_t key_len;
  double min_compress = 0;
  int32_t compression = BLOB_LZ4;
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  sealing *s = calloc(1, sizeof *s);
  if (!s) return damaged(env, "out of memory");
  if (argc < 4) {
    free(s);
    napi_throw_type_error(env, NULL, "sealingKeys(encryptionKey, idKey, minCompress, compression)");
    return NULL;
  }
  if (!keys_arg(env, argv[0], &s->keys) || !pool_buffer_arg(env, argv[1], &id_key, &key_len, BLOB_KEY_BYTES)) {
    free(s);
    return NULL;
  }
  memcpy(s->keys.id, id_key, BLOB_KEY_BYTES);
  napi_get_value_double(env, argv[2], &min_compress);
  s->min_compress = min_compress > 0 ? (size_t)min_compress : 0;
  napi_get_value_int32(env, argv[3], &compression);
  s->compression = compression;
  if (napi_create_external(env, s, free_sealing, NULL, &out) != napi_ok) {
    free(s);
    return NULL;
  }
  napi_type_tag_object(env, out, &SEALING_TAG);
  return out;
}

const blob_keys *blob_napi_sealing(napi_env env, napi_value value, size_t *min_compress, int *compression) {
  napi_valuetype type;
  void *data = NULL;
  bool tagged = false;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return NULL;
  if (napi_check_object_type_tag(env, value, &SEALING_TAG, &tagged) != napi_ok || !tagged) return NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  *min_compress = ((sealing *)data)->min_compress;
  *compression = ((sealing *)data)->compression;
  return &((sealing *)data)->keys;
}

void blob_napi_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "openRecord", NULL, open_record, NULL, NULL, NULL, napi_default, NULL },
    { "openBlob", NULL, open_blob, NULL, NULL, NULL, napi_default, NULL },
    { "openBlobAsync", NULL, open_blob_async, NULL, NULL, NULL, napi_default, NULL },
    { "sealBlob", NULL, seal_blob, NULL, NULL, NULL, napi_default, NULL },
    { "sealBlobSync", NULL, seal_blob_sync, NULL, NULL, NULL, napi_default, NULL },
    { "sealingKeys", NULL, sealing_keys, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
