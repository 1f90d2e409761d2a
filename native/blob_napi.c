/*
 * The N-API surface of blob_open.c and blob_seal.c, part of strata_native (src/native.ts):
 *   openRecord(sealed, encryptionKey | null) → plaintext
 *   openBlob(sealed, encryptionKey | null, idKey, compressed, rawLength, id) → raw bytes
 *     Both throw an Error whose message says what is wrong ("failed authentication: …")
 *     and whose code is "DAMAGED"; the caller names the object.
 *   sealBlob(data, encryptionKey | null, tryCompress, callback(err, sealed, compressed))
 *     Compresses and seals in a thread-pool job; `data` must not change until the callback.
 * Threads: the JS thread, and sealBlob's job on the pool.
 */
#include <node_api.h>
#include <stdbool.h>
#include <string.h>

#include <stdlib.h>

#include "blob_open.h"
#include "blob_napi.h"
#include "blob_seal.h"
#include "napi_return.h"

static int buffer_arg(napi_env env, napi_value v, const uint8_t **data, size_t *len, size_t want) {
  bool is = false;
  void *p = NULL;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, &p, len) != napi_ok || (want && *len != want)) {
    napi_throw_type_error(env, NULL, want ? "expected a 32-byte Buffer" : "expected a Buffer");
    return 0;
  }
  *data = p;
  return 1;
}

/* Reads the encryption key (or null: an unencrypted repository) into k. */
static int keys_arg(napi_env env, napi_value v, blob_keys *k) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  memset(k, 0, sizeof *k);
  if (type == napi_null || type == napi_undefined) return 1;
  const uint8_t *key;
  size_t len;
  if (!buffer_arg(env, v, &key, &len, BLOB_KEY_BYTES)) return 0;
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
  if (!buffer_arg(env, argv[0], &sealed, &len, 0) || !keys_arg(env, argv[1], &k)) return NULL;
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
  if (!buffer_arg(env, argv[0], &sealed, &len, 0) || !keys_arg(env, argv[1], &k) ||
      !buffer_arg(env, argv[2], &id_key, &key_len, BLOB_KEY_BYTES) || !buffer_arg(env, argv[5], &id, &id_len, BLOB_ID_BYTES)) {
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

typedef struct seal_job {
  napi_async_work work;
  napi_ref data_ref, callback;
  const uint8_t *data;
  size_t len;
  blob_keys keys;
  bool try_compress;
  uint8_t *out;
  size_t out_len;
  int compressed;
  const char *problem;
} seal_job;

static void seal_execute(napi_env env, void *arg) {
  (void)env;
  seal_job *job = arg;
  job->out = malloc(blob_seal_bound(&job->keys, job->len));
  if (!job->out) {
    job->problem = "cannot be sealed (out of memory)";
    return;
  }
  job->problem = blob_seal(&job->keys, job->data, job->len, job->try_compress, job->out, &job->out_len, &job->compressed);
  uint8_t *fitted = job->problem ? NULL : realloc(job->out, job->out_len ? job->out_len : 1);
  if (fitted) job->out = fitted;
}

static void free_sealed(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void seal_complete(napi_env env, napi_status status, void *arg) {
  seal_job *job = arg;
  napi_value cb, global, args[3];
  napi_get_reference_value(env, job->callback, &cb);
  napi_get_global(env, &global);
  napi_get_undefined(env, &args[1]);
  napi_get_boolean(env, job->compressed, &args[2]);
  if (status != napi_ok || job->problem) {
    napi_value message;
    napi_create_string_utf8(env, job->problem ? job->problem : "cannot be sealed (job failed)", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &args[0]);
    free(job->out);
  } else {
    napi_get_undefined(env, &args[0]);
    /* Handed to JS without a copy; freed when the Buffer is collected (copied where external buffers are not allowed). */
    if (napi_create_external_buffer(env, job->out_len, job->out, free_sealed, NULL, &args[1]) != napi_ok) {
      if (napi_create_buffer_copy(env, job->out_len, job->out, NULL, &args[1]) != napi_ok) {
        napi_value message;
        napi_create_string_utf8(env, "cannot be sealed (out of memory)", NAPI_AUTO_LENGTH, &message);
        napi_create_error(env, NULL, message, &args[0]);
        napi_get_undefined(env, &args[1]);
      }
      free(job->out);
    }
  }
  napi_call_function(env, global, cb, 3, args, NULL);
  napi_delete_reference(env, job->callback);
  napi_delete_reference(env, job->data_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value seal_blob(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "sealBlob(data, key, tryCompress, callback)");
    return NULL;
  }
  seal_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (!buffer_arg(env, argv[0], &job->data, &job->len, 0) || !keys_arg(env, argv[1], &job->keys)) {
    free(job);
    return NULL;
  }
  napi_get_value_bool(env, argv[2], &job->try_compress);
  napi_create_reference(env, argv[0], 1, &job->data_ref);
  napi_create_reference(env, argv[3], 1, &job->callback);
  napi_create_string_utf8(env, "strata.sealBlob", NAPI_AUTO_LENGTH, &name);
  NAPI_OR_RETURN_NULL(napi_create_async_work(env, NULL, name, seal_execute, seal_complete, job, &job->work));
  NAPI_OR_RETURN_NULL(napi_queue_async_work(env, job->work));
  return NULL;
}

void blob_napi_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "openRecord", NULL, open_record, NULL, NULL, NULL, napi_default, NULL },
    { "openBlob", NULL, open_blob, NULL, NULL, NULL, napi_default, NULL },
    { "sealBlob", NULL, seal_blob, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
