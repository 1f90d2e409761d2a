/*
 * strata_fuse: the N-API surface of the mount (used by src/fs/mount.ts).
 *
 *   mount(mountpoint, rootBatch, { allowOther, maxThreads, tableBytes, direct }, onJob) → session
 *     direct: { packRoot, encryption (Buffer or null), id, cacheBytes }: file data is read in C
 *     from the packs of a local repository (fuse_data.c; folder batches then carry each
 *     file's chunks); without it, from JS (JOB_READ).
 *     onJob(kind, id, ref, index, offset, size, nodeid): JOB_LOAD (answer with loadDone or
 *     loadFailed), JOB_READ (readDone or readFailed), JOB_LOG (a failure to log; ref holds
 *     the message), JOB_CLOSED (the session ended).
 *   loadDone(session, id, batch), loadFailed(session, id, errno)
 *   readDone(session, id, buffers), readFailed(session, id, errno)
 *   invalidate(session)                      the snapshot list changed
 *   setNamespaces(session, security, system) whether any snapshot holds such xattrs
 *   stats(session), pathOf(session, nodeid), unmount(session), trim()
 *
 * Owns: the strata_mount of each session (freed when JS drops the session object) and
 * the threadsafe function that carries jobs to JS.
 * Threads: every function here runs on the JS thread, except send_job (any thread),
 * which only queues. JS buffers are borrowed for the length of a call; C copies what it
 * keeps. After JOB_CLOSED every call is a harmless no-op.
 */
#include <node_api.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "fuse_data.h"
#include "fuse_mount.h"
#include "napi_return.h"

typedef struct session {
  strata_mount m;
  napi_threadsafe_function tsfn;
  int finished;
} session;

static void free_session(session *s) {
  if (s->m.data) data_free(s->m.data);
  if (s->m.table) table_free(s->m.table);
  ops_jobs_free(&s->m);
  free(s->m.mountpoint);
  free(s);
}

/* Any thread: queues a job for JS. */
static int send_job(strata_mount *m, job *j) {
  session *s = (session *)m;
  return napi_call_threadsafe_function(s->tsfn, j, napi_tsfn_nonblocking) == napi_ok ? 0 : EIO;
}

static napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

/*
 * JS thread: delivers a job (env is NULL when the environment is going away). Load and
 * read jobs stay in the registry of fuse_ops.c until JS answers them; JOB_CLOSED is ours.
 */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  session *s = context;
  job *j = data;
  int closed = j->kind == JOB_CLOSED, ours = closed || j->kind == JOB_LOG;
  if (!env) {
    if (ours) free(j);
    return;
  }
  napi_value argv[7], global, ignored;
  argv[0] = number(env, j->kind);
  argv[1] = number(env, (double)j->id);
  napi_create_buffer_copy(env, j->ref_len, j->ref, NULL, &argv[2]);
  argv[3] = number(env, j->index);
  argv[4] = number(env, (double)j->offset);
  argv[5] = number(env, j->size);
  argv[6] = number(env, (double)j->nodeid);
  if (ours) free(j);
  if (closed) {
    if (s->m.data) data_stop(s->m.data); /* its workers push into the session: stopped first */
    session_finish(&s->m);
    if (s->m.data) data_free(s->m.data);
    s->m.data = NULL;
    table_free(s->m.table);
    s->m.table = NULL;
    s->finished = 1;
  }
  napi_get_global(env, &global);
  napi_call_function(env, global, callback, 7, argv, &ignored);
  if (closed) napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
}

static void finalize_session(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  session *s = data;
  /* A session is only collected once it has closed (its threadsafe function keeps it referenced till then). */
  if (s->finished) free_session(s);
}

static session *get_session(napi_env env, napi_value value) {
  session *s = NULL;
  if (napi_get_value_external(env, value, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "strata_fuse: not a session");
    return NULL;
  }
  return s;
}

static int get_buffer(napi_env env, napi_value value, const uint8_t **data, size_t *len) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "strata_fuse: expected a Buffer");
    return 0;
  }
  void *p;
  napi_get_buffer_info(env, value, &p, len);
  *data = p;
  return 1;
}

static double get_number(napi_env env, napi_value value) {
  double v = 0;
  napi_get_value_double(env, value, &v);
  return v;
}

static int get_option(napi_env env, napi_value options, const char *name, double fallback, double *out) {
  bool has = false;
  napi_value v;
  *out = fallback;
  if (napi_has_named_property(env, options, name, &has) != napi_ok || !has) return 1;
  napi_get_named_property(env, options, name, &v);
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type == napi_boolean) {
    bool b;
    napi_get_value_bool(env, v, &b);
    *out = b;
  } else if (type == napi_number) {
    *out = get_number(env, v);
  }
  return 1;
}

/* The `direct` option: reads in C from a local repository's packs. 0 when it is malformed (thrown). */
static int start_direct(napi_env env, napi_value options, strata_mount *m) {
  bool has = false;
  napi_value direct, v;
  napi_valuetype type;
  if (napi_has_named_property(env, options, "direct", &has) != napi_ok || !has) return 1;
  napi_get_named_property(env, options, "direct", &direct);
  napi_typeof(env, direct, &type);
  if (type != napi_object) return 1;
  blob_keys keys;
  memset(&keys, 0, sizeof keys);
  const uint8_t *key;
  size_t len;
  napi_get_named_property(env, direct, "encryption", &v);
  napi_typeof(env, v, &type);
  if (type != napi_null && type != napi_undefined) {
    if (!get_buffer(env, v, &key, &len) || len != BLOB_KEY_BYTES) return napi_throw_type_error(env, NULL, "direct.encryption: 32 bytes"), 0;
    keys.encrypted = 1;
    memcpy(keys.encryption, key, BLOB_KEY_BYTES);
  }
  napi_get_named_property(env, direct, "id", &v);
  if (!get_buffer(env, v, &key, &len) || len != BLOB_KEY_BYTES) return napi_throw_type_error(env, NULL, "direct.id: 32 bytes"), 0;
  memcpy(keys.id, key, BLOB_KEY_BYTES);
  char root[4096];
  napi_get_named_property(env, direct, "packRoot", &v);
  if (napi_get_value_string_utf8(env, v, root, sizeof root, &len) != napi_ok) return napi_throw_type_error(env, NULL, "direct.packRoot: a path"), 0;
  double cache_bytes;
  get_option(env, direct, "cacheBytes", 16 << 20, &cache_bytes);
  m->data = data_new(m, &keys, root, (size_t)cache_bytes);
  memset(&keys, 0, sizeof keys);
  if (!m->data) return napi_throw_error(env, "ENOMEM", "strata_fuse: out of memory"), 0;
  return 1;
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "strata_fuse.mount(mountpoint, rootBatch, options, onJob)");
    return NULL;
  }
  size_t path_len;
  NAPI_OR_RETURN_NULL(napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len));
  const uint8_t *root;
  size_t root_len;
  if (!get_buffer(env, argv[1], &root, &root_len)) return NULL;
  double allow_other, max_threads, table_bytes;
  get_option(env, argv[2], "allowOther", 0, &allow_other);
  get_option(env, argv[2], "maxThreads", 8, &max_threads);
  get_option(env, argv[2], "tableBytes", 64 << 20, &table_bytes);

  session *s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "strata_fuse: out of memory");
    return NULL;
  }
  if (ops_jobs_init(&s->m)) {
    free(s);
    napi_throw_error(env, "ENOMEM", "strata_fuse: out of memory");
    return NULL;
  }
  s->m.mountpoint = malloc(path_len + 1);
  napi_get_value_string_utf8(env, argv[0], s->m.mountpoint, path_len + 1, &path_len);
  s->m.allow_other = allow_other != 0;
  s->m.max_threads = max_threads >= 1 ? (unsigned)max_threads : 1;
  s->m.send_job = send_job;
  atomic_store(&s->m.has_security, 1);
  atomic_store(&s->m.has_system, 1);
  const char *problem = NULL;
  s->m.table = table_new(root, root_len, (size_t)table_bytes, &problem);
  if (!s->m.table) {
    napi_throw_error(env, "EINVAL", problem);
    free_session(s);
    return NULL;
  }
  if (!start_direct(env, argv[2], &s->m)) {
    free_session(s);
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "strata mount", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    free_session(s);
    napi_throw_error(env, NULL, "strata_fuse: cannot create the threadsafe function");
    return NULL;
  }
  int err = session_start(&s->m, &problem);
  if (err) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    napi_throw_error(env, err == EIO ? "EMOUNT" : "EINVAL", problem);
    return NULL;
  }
  napi_value handle;
  NAPI_OR_RETURN_NULL(napi_create_external(env, s, finalize_session, NULL, &handle));
  return handle;
}

/* Reads (session, id, ...) and returns the live session, or NULL (finished, or an exception is pending). */
static session *live_session(napi_env env, napi_callback_info info, size_t want, napi_value *argv, uint64_t *id) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "strata_fuse: missing arguments");
    return NULL;
  }
  session *s = get_session(env, argv[0]);
  if (!s || s->finished) return NULL;
  if (id) *id = (uint64_t)get_number(env, argv[1]);
  return s;
}

static napi_value js_load_done(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint64_t id;
  session *s = live_session(env, info, 3, argv, &id);
  if (!s) return NULL;
  const uint8_t *batch;
  size_t len;
  if (!get_buffer(env, argv[2], &batch, &len)) return NULL;
  const char *problem = NULL;
  ops_load_done(&s->m, id, batch, len, &problem);
  if (problem) napi_throw_error(env, "EINVAL", problem);
  return NULL;
}

/* (session, id, errno): a job JS could not do. */
static napi_value job_failed(napi_env env, napi_callback_info info, int (*fail)(strata_mount *, uint64_t, int)) {
  napi_value argv[3];
  uint64_t id;
  session *s = live_session(env, info, 3, argv, &id);
  if (s) fail(&s->m, id, (int)get_number(env, argv[2]));
  return NULL;
}

static napi_value js_load_failed(napi_env env, napi_callback_info info) { return job_failed(env, info, ops_load_failed); }
static napi_value js_read_failed(napi_env env, napi_callback_info info) { return job_failed(env, info, ops_read_failed); }

static napi_value js_read_done(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint64_t id;
  session *s = live_session(env, info, 3, argv, &id);
  if (!s) return NULL;
  bool is_array = false;
  napi_is_array(env, argv[2], &is_array);
  uint32_t count = 1;
  if (is_array) napi_get_array_length(env, argv[2], &count);
  struct iovec small[8];
  struct iovec *iov = count <= 8 ? small : malloc(count * sizeof *iov);
  if (!iov) {
    ops_read_failed(&s->m, id, ENOMEM);
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value item = argv[2];
    if (is_array) napi_get_element(env, argv[2], i, &item);
    const uint8_t *data;
    size_t len;
    if (!get_buffer(env, item, &data, &len)) {
      if (iov != small) free(iov);
      ops_read_failed(&s->m, id, EIO);
      return NULL;
    }
    iov[i].iov_base = (void *)data;
    iov[i].iov_len = len;
  }
  ops_read_done(&s->m, id, iov, (int)count); /* copied into the kernel before it returns */
  if (iov != small) free(iov);
  return NULL;
}

static napi_value js_invalidate(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  session *s = live_session(env, info, 1, argv, NULL);
  if (s) ops_invalidate(&s->m);
  return NULL;
}

static napi_value js_set_namespaces(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session *s = live_session(env, info, 3, argv, NULL);
  if (!s) return NULL;
  bool security = true, system = true;
  napi_get_value_bool(env, argv[1], &security);
  napi_get_value_bool(env, argv[2], &system);
  atomic_store(&s->m.has_security, security);
  atomic_store(&s->m.has_system, system);
  return NULL;
}

static void set_number(napi_env env, napi_value object, const char *name, double v) {
  napi_set_named_property(env, object, name, number(env, v));
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  session *s = live_session(env, info, 1, argv, NULL);
  if (!s) return NULL;
  static const char *names[COUNTERS] = {
    "lookup", "forget", "getattr", "readlink", "open", "read", "opendir", "readdir", "readdirplus",
    "statfs", "getxattr", "listxattr", "lseek", "other", "jsLoad", "jsRead", "waited", "pushed", "storedBytes", "opened", "openedBytes",
  };
  NAPI_OR_RETURN_NULL(napi_create_object(env, &out));
  for (int i = 0; i < COUNTERS; i++) set_number(env, out, names[i], (double)atomic_load(&s->m.counters[i]));
  table_lock(s->m.table);
  table_stats t = table_get_stats(s->m.table);
  table_unlock(s->m.table);
  set_number(env, out, "nodes", (double)t.nodes);
  set_number(env, out, "foldersLoaded", (double)t.folders_loaded);
  set_number(env, out, "tableBytes", (double)t.bytes);
  return out;
}

static napi_value js_path_of(napi_env env, napi_callback_info info) {
  napi_value argv[2], out = NULL;
  session *s = live_session(env, info, 2, argv, NULL);
  if (!s) return NULL;
  char path[4096];
  table_lock(s->m.table);
  node *n = table_get(s->m.table, (uint64_t)get_number(env, argv[1]));
  size_t len = n ? table_path(n, path, sizeof path) : 0;
  table_unlock(s->m.table);
  if (n) napi_create_buffer_copy(env, len, path, NULL, &out);
  return out;
}

/* Gives the system back the memory malloc holds free (a large listing leaves much of it). */
static napi_value js_trim(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  malloc_trim(0);
  return NULL;
}

static napi_value js_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  session *s = live_session(env, info, 1, argv, NULL);
  if (s) session_stop(&s->m);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL },
    { "loadDone", NULL, js_load_done, NULL, NULL, NULL, napi_default, NULL },
    { "loadFailed", NULL, js_load_failed, NULL, NULL, NULL, napi_default, NULL },
    { "readDone", NULL, js_read_done, NULL, NULL, NULL, napi_default, NULL },
    { "readFailed", NULL, js_read_failed, NULL, NULL, NULL, napi_default, NULL },
    { "invalidate", NULL, js_invalidate, NULL, NULL, NULL, napi_default, NULL },
    { "setNamespaces", NULL, js_set_namespaces, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL },
    { "pathOf", NULL, js_path_of, NULL, NULL, NULL, napi_default, NULL },
    { "unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL },
    { "trim", NULL, js_trim, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
