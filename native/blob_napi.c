/*
 * The N-API surface of blob_open.c, part of strata_native (src/native.ts):
 *   openRecord(sealed, encryptionKey | null) → plaintext
 *   openBlob(sealed, encryptionKey | null, idKey, compressed, rawLength, id) → raw bytes
 * Both throw an Error whose message says what is wrong ("failed authentication: …")
 * and whose code is "DAMAGED"; the caller names the object.
 * Threads: the JS thread.
 */
#include <node_api.h>
#include <stdbool.h>
#include <string.h>

#include "blob_open.h"
#include "blob_napi.h"

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

void blob_napi_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "openRecord", NULL, open_record, NULL, NULL, NULL, napi_default, NULL },
    { "openBlob", NULL, open_blob, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
