/*
 * strata_native: the few things Node cannot do (or does too slowly) for a NAS backup.
 *
 *  - cdcCut: one FastCDC cut point (normalised chunking, 32-bit gear hash). The
 *    TypeScript twin in src/store/chunker.ts must produce the same boundaries;
 *    test/store/chunker.test.ts pins both against golden values.
 *  - extended attributes on files and symlinks without following them
 *    (llistxattr/lgetxattr/lsetxattr): POSIX ACLs, Samba's user.DOSATTRIB, security.NTACL.
 *  - mknod for FIFOs and device nodes.
 *  - SEEK_DATA / SEEK_HOLE to find the data of sparse files.
 *  - utimensat(AT_SYMLINK_NOFOLLOW) with whole nanoseconds (Node's lutimes takes
 *    float seconds, which cannot carry nanoseconds for present-day times).
 *  - scanDir and readSmall: one thread-pool job per folder (list + lstat of every
 *    entry) and per small file (open + fstat + read + fstat + close) instead of one
 *    round trip per syscall; measured as the main cost of capturing many small files.
 *    Both open with O_NOATIME where allowed, so a backup does not change access times.
 *    With sealing keys (sealingKeys, blob_napi.c), readSmall also hashes and seals what it
 *    read, so a small file costs one hand-off to the pool instead of two.
 *  - writeNew: create + write + close of a restored small file in one job.
 *  - openRecord, openBlob: reading what the repository sealed (blob_napi.c over blob_open.c).
 *  - rsEncode, rsRebuild: Reed–Solomon parity of packs (rs_napi.c over rs.c).
 *
 * Paths are taken as Buffers (or strings) because NAS file names are byte strings.
 */
#include <node_api.h>
#include "blob_napi.h"
#include "rs_napi.h"
#include "blob_seal.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "napi_return.h"
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <limits.h>
#include <unistd.h>

/* Throws an Error shaped like Node's fs errors: message, code, errno, syscall, path. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  char msg[512];
  const char *code = NULL;
  switch (err) {
    case ENOENT: code = "ENOENT"; break;
    case EACCES: code = "EACCES"; break;
    case EPERM: code = "EPERM"; break;
    case ENOTSUP: code = "ENOTSUP"; break;
    case ENODATA: code = "ENODATA"; break;
    case EEXIST: code = "EEXIST"; break;
    case ENOSPC: code = "ENOSPC"; break;
    case ERANGE: code = "ERANGE"; break;
    case E2BIG: code = "E2BIG"; break;
    case ENXIO: code = "ENXIO"; break;
    case EINVAL: code = "EINVAL"; break;
    case ENOTDIR: code = "ENOTDIR"; break;
    case EROFS: code = "EROFS"; break;
    case EIO: code = "EIO"; break;
    default: code = "EUNKNOWN"; break;
  }
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", code, strerror(err), syscall, path ? path : "");
  napi_value error, message, value;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "code", value);
  napi_create_int32(env, -err, &value);
  napi_set_named_property(env, error, "errno", value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, error, "path", value);
  }
  napi_throw(env, error);
  return NULL;
}

/* Copies a Buffer or string argument into a NUL-terminated heap string (caller frees). */
static char *get_path(napi_env env, napi_value value) {
  bool is_buffer = false;
  napi_is_buffer(env, value, &is_buffer);
  if (is_buffer) {
    void *data; size_t len;
    if (napi_get_buffer_info(env, value, &data, &len) != napi_ok) return NULL;
    if (memchr(data, 0, len)) { napi_throw_type_error(env, NULL, "path contains a NUL byte"); return NULL; }
    char *s = malloc(len + 1);
    memcpy(s, data, len); s[len] = 0;
    return s;
  }
  size_t len;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "path must be a Buffer or a string");
    return NULL;
  }
  char *s = malloc(len + 1);
  napi_get_value_string_utf8(env, value, s, len + 1, &len);
  return s;
}

static int64_t get_i64(napi_env env, napi_value v) { int64_t r = 0; napi_get_value_int64(env, v, &r); return r; }
static uint32_t get_u32(napi_env env, napi_value v) { uint32_t r = 0; napi_get_value_uint32(env, v, &r); return r; }

/*
 * cdcCut(buf, start, end, eof, gear: Uint32Array(256), minSize, normSize, maxSize, maskS, maskL)
 * -> length of the chunk starting at buf[start], or 0 when more data is needed to decide.
 */
static napi_value cdc_cut(napi_env env, napi_callback_info info) {
  size_t argc = 10; napi_value argv[10];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10) { napi_throw_type_error(env, NULL, "cdcCut takes 10 arguments"); return NULL; }
  uint8_t *buf; size_t buflen;
  NAPI_OR_RETURN_NULL(napi_get_buffer_info(env, argv[0], (void **)&buf, &buflen));
  int64_t start = get_i64(env, argv[1]), end = get_i64(env, argv[2]);
  bool eof = false; napi_get_value_bool(env, argv[3], &eof);
  napi_typedarray_type type; size_t glen; void *gdata; napi_value ab; size_t off;
  NAPI_OR_RETURN_NULL(napi_get_typedarray_info(env, argv[4], &type, &glen, &gdata, &ab, &off));
  if (type != napi_uint32_array || glen != 256) { napi_throw_type_error(env, NULL, "gear must be a Uint32Array(256)"); return NULL; }
  const uint32_t *gear = gdata;
  uint32_t min = get_u32(env, argv[5]), norm = get_u32(env, argv[6]), max = get_u32(env, argv[7]);
  uint32_t mask_s = get_u32(env, argv[8]), mask_l = get_u32(env, argv[9]);
  if (start < 0 || end < start || (size_t)end > buflen) { napi_throw_range_error(env, NULL, "cdcCut: bad range"); return NULL; }

  const uint8_t *p = buf + start;
  uint64_t n = (uint64_t)(end - start), result = 0;
  if (n <= min) {
    result = eof ? n : 0;
  } else {
    uint64_t limit = n > max ? max : n;
    uint64_t normal = norm < limit ? norm : limit;
    uint32_t hash = 0;
    uint64_t i = min;
    for (; i < normal; i++) {
      hash = (hash << 1) + gear[p[i]];
      if (!(hash & mask_s)) { result = i + 1; goto done; }
    }
    for (; i < limit; i++) {
      hash = (hash << 1) + gear[p[i]];
      if (!(hash & mask_l)) { result = i + 1; goto done; }
    }
    result = (limit == max || eof) ? limit : 0;
  }
done:;
  napi_value out;
  NAPI_OR_RETURN_NULL(napi_create_double(env, (double)result, &out));
  return out;
}

/* listXattrs(path) -> string[] (names of the attributes of path itself, not of a link's target) */
static napi_value list_xattrs(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  ssize_t size;
  char *names = NULL;
  for (;;) {
    size = llistxattr(path, NULL, 0);
    if (size < 0) break;
    free(names);
    names = malloc(size ? size : 1);
    size = llistxattr(path, names, size);
    if (size >= 0 || errno != ERANGE) break;
  }
  if (size < 0) {
    int err = errno; free(names);
    napi_value r = throw_errno(env, err, "llistxattr", path);
    free(path); return r;
  }
  napi_value arr; uint32_t count = 0;
  napi_create_array(env, &arr);
  for (ssize_t i = 0; i < size;) {
    size_t len = strlen(names + i);
    napi_value name;
    napi_create_string_utf8(env, names + i, len, &name);
    napi_set_element(env, arr, count++, name);
    i += len + 1;
  }
  free(names); free(path);
  return arr;
}

/* getXattr(path, name) -> Buffer */
static napi_value get_xattr(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  char *name = get_path(env, argv[1]);
  if (!name) { free(path); return NULL; }
  ssize_t size; char *value = NULL;
  for (;;) {
    size = lgetxattr(path, name, NULL, 0);
    if (size < 0) break;
    free(value);
    value = malloc(size ? size : 1);
    size = lgetxattr(path, name, value, size);
    if (size >= 0 || errno != ERANGE) break;
  }
  napi_value result = NULL;
  if (size < 0) {
    throw_errno(env, errno, "lgetxattr", path);
  } else {
    void *copy;
    napi_create_buffer_copy(env, size, value, &copy, &result);
  }
  free(value); free(name); free(path);
  return result;
}

/* setXattr(path, name, value: Buffer) */
static napi_value set_xattr(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  char *name = get_path(env, argv[1]);
  if (!name) { free(path); return NULL; }
  void *data; size_t len;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    free(name); free(path);
    napi_throw_type_error(env, NULL, "xattr value must be a Buffer");
    return NULL;
  }
  if (lsetxattr(path, name, data, len, 0) != 0) throw_errno(env, errno, "lsetxattr", path);
  free(name); free(path);
  return NULL;
}

/* mknod(path, mode, rdev): mode includes the file type (S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK). */
static napi_value mknod_(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  uint32_t mode = get_u32(env, argv[1]);
  int64_t rdev = get_i64(env, argv[2]);
  if (mknod(path, (mode_t)mode, (dev_t)rdev) != 0) throw_errno(env, errno, "mknod", path);
  free(path);
  return NULL;
}

/* seekData(fd, offset) / seekHole(fd, offset) -> offset, or -1 when there is no more data (ENXIO). */
static napi_value seek_common(napi_env env, napi_callback_info info, int whence, const char *syscall) {
  size_t argc = 2; napi_value argv[2];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = 0; napi_get_value_int32(env, argv[0], &fd);
  int64_t offset = get_i64(env, argv[1]);
  off_t r = lseek(fd, (off_t)offset, whence);
  if (r < 0 && errno != ENXIO) return throw_errno(env, errno, syscall, NULL);
  napi_value out;
  NAPI_OR_RETURN_NULL(napi_create_int64(env, r < 0 ? -1 : (int64_t)r, &out));
  return out;
}
static napi_value seek_data(napi_env env, napi_callback_info info) { return seek_common(env, info, SEEK_DATA, "lseek(SEEK_DATA)"); }
static napi_value seek_hole(napi_env env, napi_callback_info info) { return seek_common(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)"); }

/* utimesNs(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec) on the path itself (symlinks too). */
static napi_value utimes_ns(napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  struct timespec ts[2];
  ts[0].tv_sec = (time_t)get_i64(env, argv[1]); ts[0].tv_nsec = (long)get_i64(env, argv[2]);
  ts[1].tv_sec = (time_t)get_i64(env, argv[3]); ts[1].tv_nsec = (long)get_i64(env, argv[4]);
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0) throw_errno(env, errno, "utimensat", path);
  free(path);
  return NULL;
}


/* ---- batched file-system work on the thread pool ---- */

/*
 * mode uid gid size nlink ino dev rdev blocks atime_s atime_ns mtime_s mtime_ns ctime_s ctime_ns
 * errno, and the bytes of the entry's xattr name list where a listing asked (0: it has none) or -1.
 */
#define STAT_FIELDS 17
static void put_stat(double *out, const struct stat *st, int err) {
  out[16] = -1;
  if (err) { memset(out, 0, 16 * sizeof(double)); out[15] = err; return; }
  out[0] = st->st_mode; out[1] = st->st_uid; out[2] = st->st_gid; out[3] = (double)st->st_size;
  out[4] = (double)st->st_nlink; out[5] = (double)st->st_ino; out[6] = (double)st->st_dev; out[7] = (double)st->st_rdev;
  out[8] = (double)st->st_blocks;
  out[9] = (double)st->st_atim.tv_sec; out[10] = st->st_atim.tv_nsec;
  out[11] = (double)st->st_mtim.tv_sec; out[12] = st->st_mtim.tv_nsec;
  out[13] = (double)st->st_ctim.tv_sec; out[14] = st->st_ctim.tv_nsec; out[15] = 0;
}

static int open_noatime(const char *path, int flags) {
  int fd = open(path, flags | O_NOATIME | O_CLOEXEC);
  if (fd < 0 && errno == EPERM) fd = open(path, flags | O_CLOEXEC);
  return fd;
}

typedef struct {
  napi_async_work work;
  napi_ref callback;
  char *path;
  int err;
  const char *syscall;
  /* scanDir */
  char *names; size_t names_len, names_cap;  /* NUL-separated */
  size_t count;
  double *stats; size_t stats_cap;
  /* readSmall: reads into a caller's buffer (kept alive by buffer_ref) */
  napi_ref buffer_ref;
  size_t max_bytes; /* readSmall: room in the buffer; writeNew: bytes to write */
  char *data; size_t data_len;
  double before[STAT_FIELDS], after[STAT_FIELDS];
  /* readSmall with sealing keys (a copy: the handle may be collected while the job runs): the content's blob id, sealed */
  int sealing; blob_keys keys; size_t min_compress; int compression;
  uint8_t id[BLOB_ID_BYTES];
  uint8_t *sealed; size_t sealed_len; int compressed; const char *seal_problem;
} Job;

static void job_free(napi_env env, Job *job) {
  if (job->callback) napi_delete_reference(env, job->callback);
  if (job->buffer_ref) { napi_delete_reference(env, job->buffer_ref); job->data = NULL; }
  free(job->sealed);
  if (job->work) napi_delete_async_work(env, job->work);
  memset(&job->keys, 0, sizeof job->keys);
  free(job->path); free(job->names); free(job->stats); free(job->data); free(job);
}

static napi_value errno_error(napi_env env, int err, const char *syscall, const char *path) {
  throw_errno(env, err, syscall, path);
  napi_value e; napi_get_and_clear_last_exception(env, &e);
  return e;
}

static void scan_execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  int fd = open_noatime(job->path, O_RDONLY | O_DIRECTORY);
  if (fd < 0) { job->err = errno; job->syscall = "open"; return; }
  DIR *dir = fdopendir(fd);
  if (!dir) { job->err = errno; job->syscall = "fdopendir"; close(fd); return; }
  struct dirent *d;
  static _Thread_local char entry_path[PATH_MAX];
  errno = 0;
  while ((d = readdir(dir)) != NULL) {
    if (d->d_name[0] == '.' && (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0))) continue;
    size_t len = strlen(d->d_name) + 1;
    if (job->names_len + len > job->names_cap) {
      job->names_cap = (job->names_cap + len) * 2;
      job->names = realloc(job->names, job->names_cap);
    }
    memcpy(job->names + job->names_len, d->d_name, len);
    job->names_len += len;
    if ((job->count + 1) * STAT_FIELDS > job->stats_cap) {
      job->stats_cap = (job->stats_cap + STAT_FIELDS) * 2;
      job->stats = realloc(job->stats, job->stats_cap * sizeof(double));
    }
    struct stat st;
    int r = fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW);
    double *out = job->stats + job->count * STAT_FIELDS;
    put_stat(out, &st, r == 0 ? 0 : errno);
    /* Whether it has xattrs at all, asked here on the pool: most entries have none, and then
       capture's JS thread need not ask (one llistxattr per entry, ~12% of a no-change backup). */
    if (r == 0 && snprintf(entry_path, sizeof entry_path, "%s/%s", job->path, d->d_name) < (int)sizeof entry_path) {
      ssize_t names = llistxattr(entry_path, NULL, 0);
      out[16] = names >= 0 ? (double)names : (errno == ENOTSUP ? 0 : -1);
    }
    job->count++;
    errno = 0;
  }
  if (errno) { job->err = errno; job->syscall = "readdir"; }
  closedir(dir);
}

static void scan_complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value cb, global, args[3], undefined;
  napi_get_reference_value(env, job->callback, &cb);
  napi_get_global(env, &global);
  napi_get_undefined(env, &undefined);
  if (status != napi_ok || job->err) {
    args[0] = errno_error(env, job->err ? job->err : EIO, job->err ? job->syscall : "scanDir", job->path);
    napi_call_function(env, global, cb, 1, args, NULL);
  } else {
    /* One Buffer of NUL-terminated names, not one Buffer per name: a folder of 100,000 files costs its names' bytes. */
    void *copy;
    napi_create_buffer_copy(env, job->names_len, job->names ? job->names : "", &copy, &args[1]);
    napi_value ab; void *abdata;
    size_t bytes = job->count * STAT_FIELDS * sizeof(double);
    napi_create_arraybuffer(env, bytes, &abdata, &ab);
    if (bytes) memcpy(abdata, job->stats, bytes);
    napi_create_typedarray(env, napi_float64_array, job->count * STAT_FIELDS, ab, 0, &args[2]);
    args[0] = undefined;
    napi_call_function(env, global, cb, 3, args, NULL);
  }
  job_free(env, job);
}

static void seal_read(Job *job) {
  unsigned int id_len = 0;
  const uint8_t *data = (const uint8_t *)job->data;
  if (!HMAC(EVP_sha256(), job->keys.id, BLOB_KEY_BYTES, data, job->data_len, job->id, &id_len)) {
    job->seal_problem = "cannot be hashed (HMAC failed)";
    return;
  }
  int compression = job->data_len >= job->min_compress ? job->compression : BLOB_STORE;
  job->seal_problem = blob_seal_new(&job->keys, data, job->data_len, compression, &job->sealed, &job->sealed_len, &job->compressed);
}

static void read_execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  /* O_NONBLOCK: a file replaced by a FIFO since it was listed must not block the thread. */
  int fd = open_noatime(job->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) { job->err = errno; job->syscall = "open"; return; }
  struct stat st;
  if (fstat(fd, &st) != 0) { job->err = errno; job->syscall = "fstat"; close(fd); return; }
  put_stat(job->before, &st, 0);
  if (!S_ISREG(st.st_mode)) { job->err = EINVAL; job->syscall = "read (not a regular file)"; close(fd); return; }
  /* One byte more than the size (as far as the buffer goes), to notice a file that grew. */
  size_t want = (size_t)st.st_size < job->max_bytes ? (size_t)st.st_size + 1 : job->max_bytes;
  while (job->data_len < want) {
    ssize_t n = read(fd, job->data + job->data_len, want - job->data_len);
    if (n < 0) { if (errno == EINTR) continue; job->err = errno; job->syscall = "read"; close(fd); return; }
    if (n == 0) break;
    job->data_len += (size_t)n;
  }
  if (fstat(fd, &st) != 0) { job->err = errno; job->syscall = "fstat"; close(fd); return; }
  put_stat(job->after, &st, 0);
  close(fd);
  /* Read whole (it did not outgrow the buffer): its id and sealed blob in the same job, one hand-off per file. */
  if (job->sealing && job->data_len < job->max_bytes) seal_read(job);
}

static napi_value float64s(napi_env env, const double *values) {
  napi_value ab, arr; void *abdata;
  napi_create_arraybuffer(env, STAT_FIELDS * sizeof(double), &abdata, &ab);
  memcpy(abdata, values, STAT_FIELDS * sizeof(double));
  napi_create_typedarray(env, napi_float64_array, STAT_FIELDS, ab, 0, &arr);
  return arr;
}

static void read_complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value cb, global, args[4];
  napi_get_reference_value(env, job->callback, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok || job->err) {
    args[0] = errno_error(env, job->err ? job->err : EIO, job->err ? job->syscall : "readSmall", job->path);
    napi_call_function(env, global, cb, 1, args, NULL);
  } else {
    napi_get_undefined(env, &args[0]);
    napi_create_double(env, (double)job->data_len, &args[1]);
    args[2] = float64s(env, job->before);
    args[3] = float64s(env, job->after);
    if (job->sealed && !job->seal_problem) {
      void *copy;
      napi_value more[3];
      napi_create_buffer_copy(env, BLOB_ID_BYTES, job->id, &copy, &more[0]);
      if (blob_napi_buffer(env, &job->sealed, job->sealed_len, &more[1]) != napi_ok) napi_get_undefined(env, &more[1]); /* JS then seals it itself */
      napi_get_boolean(env, job->compressed, &more[2]);
      napi_value all[7] = { args[0], args[1], args[2], args[3], more[0], more[1], more[2] };
      napi_call_function(env, global, cb, 7, all, NULL);
    } else {
      napi_call_function(env, global, cb, 4, args, NULL);
    }
  }
  job_free(env, job);
}

/* Starts a job: args are (path, [buffer,] callback). */
static napi_value start_job(napi_env env, napi_callback_info info, const char *name, napi_async_execute_callback execute,
                            napi_async_complete_callback complete, bool with_buffer) {
  size_t argc = 4; napi_value argv[4];
  NAPI_OR_RETURN_NULL(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Job *job = calloc(1, sizeof(Job));
  job->path = get_path(env, argv[0]);
  if (!job->path) { free(job); return NULL; }
  if (with_buffer) {
    if (napi_get_buffer_info(env, argv[1], (void **)&job->data, &job->max_bytes) != napi_ok) {
      free(job->path); free(job);
      napi_throw_type_error(env, NULL, "readSmall needs a Buffer to read into");
      return NULL;
    }
    napi_create_reference(env, argv[1], 1, &job->buffer_ref);
  }
  /* readSmall(path, buffer, sealing | null, callback): the sealing keys make it hash and seal what it read. */
  size_t callback_at = with_buffer ? (argc > 3 ? 3 : 2) : 1;
  if (callback_at == 3) {
    const blob_keys *keys = blob_napi_sealing(env, argv[2], &job->min_compress, &job->compression);
    if (keys) { job->keys = *keys; job->sealing = 1; }
  }
  napi_create_reference(env, argv[callback_at], 1, &job->callback);
  napi_value resource_name;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  NAPI_OR_RETURN_NULL(napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work));
  NAPI_OR_RETURN_NULL(napi_queue_async_work(env, job->work));
  return NULL;
}

/* writeNew: creates a file that must not exist yet (never through a symlink) and writes all of it. */
static void write_execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  int fd = open(job->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) { job->err = errno; job->syscall = "open"; return; }
  size_t done = 0;
  while (done < job->max_bytes) {
    ssize_t n = write(fd, job->data + done, job->max_bytes - done);
    if (n < 0) { if (errno == EINTR) continue; job->err = errno; job->syscall = "write"; close(fd); return; }
    done += (size_t)n;
  }
  if (close(fd) != 0) { job->err = errno; job->syscall = "close"; }
}

static void write_complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value cb, global, args[1];
  napi_get_reference_value(env, job->callback, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok || job->err) args[0] = errno_error(env, job->err ? job->err : EIO, job->err ? job->syscall : "writeNew", job->path);
  else napi_get_undefined(env, &args[0]);
  napi_call_function(env, global, cb, 1, args, NULL);
  job_free(env, job);
}

static napi_value write_new(napi_env env, napi_callback_info info) {
  return start_job(env, info, "strata.writeNew", write_execute, write_complete, true);
}

static napi_value scan_dir(napi_env env, napi_callback_info info) {
  return start_job(env, info, "strata.scanDir", scan_execute, scan_complete, false);
}
static napi_value read_small(napi_env env, napi_callback_info info) {
  return start_job(env, info, "strata.readSmall", read_execute, read_complete, true);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"cdcCut", NULL, cdc_cut, NULL, NULL, NULL, napi_default, NULL},
    {"listXattrs", NULL, list_xattrs, NULL, NULL, NULL, napi_default, NULL},
    {"getXattr", NULL, get_xattr, NULL, NULL, NULL, napi_default, NULL},
    {"setXattr", NULL, set_xattr, NULL, NULL, NULL, napi_default, NULL},
    {"mknod", NULL, mknod_, NULL, NULL, NULL, napi_default, NULL},
    {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_default, NULL},
    {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_default, NULL},
    {"utimesNs", NULL, utimes_ns, NULL, NULL, NULL, napi_default, NULL},
    {"scanDir", NULL, scan_dir, NULL, NULL, NULL, napi_default, NULL},
    {"readSmall", NULL, read_small, NULL, NULL, NULL, napi_default, NULL},
    {"writeNew", NULL, write_new, NULL, NULL, NULL, napi_default, NULL},
  };
  NAPI_OR_RETURN_NULL(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  blob_napi_register(env, exports);
  rs_napi_register(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
