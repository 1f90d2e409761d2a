/*
 * One mounted session: what the FUSE ops (fuse_ops.c), the session and its threads
 * (fuse_session.c) and the N-API surface (fuse_napi.c) share.
 *
 * Jobs are the only way work reaches JS: a folder to load (JOB_LOAD), file data to
 * read when C does not read it itself (JOB_READ), a failure to log (JOB_LOG: the
 * message in `ref`), and the end of the session
 * (JOB_CLOSED). JOB_LOG and JOB_CLOSED are not answered. Jobs are created by
 * FUSE workers (or by the JS thread when it replays parked requests), handed to
 * `send_job` with no lock held, and completed by JS through ops_*_done/failed,
 * which look them up by id: a late or repeated answer finds nothing and is dropped.
 */
#ifndef STRATA_FUSE_MOUNT_H
#define STRATA_FUSE_MOUNT_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fuse_table.h"

enum job_kind { JOB_LOAD = 1, JOB_READ = 2, JOB_CLOSED = 3, JOB_LOG = 4 };

typedef struct job {
  struct job *next_free;
  uint32_t kind;
  uint32_t prefetch; /* JOB_LOAD started ahead of a listing (bounded by MAX_PREFETCH) */
  uint64_t id;
  uint64_t nodeid;
  fuse_req_t req;  /* JOB_READ: the request JS answers; NULL for data pushed ahead into the page cache */
  uint64_t offset; /* JOB_READ */
  uint32_t size;   /* JOB_READ */
  uint32_t index;  /* position of the node in its folder's batch */
  uint32_t ref_len;
  uint8_t ref[];   /* copied: the node may change once the lock is dropped */
} job;

/* Counters of FUSE calls (all answered in C), of jobs that reached JS, and of calls that waited for a folder to load. */
enum counter {
  C_LOOKUP, C_FORGET, C_GETATTR, C_READLINK, C_OPEN, C_READ, C_OPENDIR, C_READDIR, C_READDIRPLUS,
  C_STATFS, C_GETXATTR, C_LISTXATTR, C_LSEEK, C_OTHER, C_JS_LOAD, C_JS_READ, C_WAITED, C_PUSHED, C_STORED_BYTES, C_OPENED, C_OPENED_BYTES, COUNTERS
};

typedef struct notice notice;
struct data_path;

typedef struct strata_mount {
  table *table;
  struct fuse_session *se;
  char *mountpoint;
  int allow_other;
  unsigned max_threads;

  /* Whether any snapshot holds security.* or system.* (ACL) xattrs: where none does,
     those namespaces answer EOPNOTSUPP, which tools remember per filesystem. */
  atomic_int has_security, has_system;
  /* What the kernel offered at init. */
  int no_open, no_opendir;

  /* Data read in C from a local repository's packs (fuse_data.c), or NULL: data comes from JS. */
  struct data_path *data;

  /* Set by fuse_napi.c: hands a job to JS; nonzero when it could not (closing). */
  int (*send_job)(struct strata_mount *m, job *j);
  void *bridge;

  pthread_mutex_t jobs_lock;
  job **jobs;          /* by slot (the id's low bits, fuse_ops.c) */
  uint32_t jobs_cap;
  uint32_t *job_gen;   /* generation per slot (the id's high bits) */
  uint32_t free_slot;  /* head of the free-slot chain, or UINT32_MAX */
  uint32_t *next_slot;
  uint32_t prefetching; /* loads in flight that nobody waits for yet */
  uint64_t *ahead;      /* folders to load ahead of a walk: a stack (fuse_ops.c) */
  uint32_t ahead_top, ahead_len;
  uint64_t push_inflight; /* bytes of files being read to push into the page cache */

  pthread_t loop_thread, notice_thread;
  pthread_mutex_t notice_lock;
  pthread_cond_t notice_cond;
  notice *notices, *notices_tail;
  size_t notice_bytes;
  atomic_int closing;
  int loop_started, notice_started;

  atomic_uint_fast64_t counters[COUNTERS];
} strata_mount;

/* fuse_ops.c */
extern const struct fuse_lowlevel_ops strata_ops;
int ops_jobs_init(strata_mount *m);
void ops_jobs_free(strata_mount *m);
/* Completions, from the JS thread. Each returns 0, or ENOENT when the job is unknown. */
int ops_load_done(strata_mount *m, uint64_t id, const uint8_t *batch, size_t len, const char **problem);
int ops_load_failed(strata_mount *m, uint64_t id, int err);
int ops_read_done(strata_mount *m, uint64_t id, const struct iovec *iov, int count);
int ops_read_failed(strata_mount *m, uint64_t id, int err);
/* Tells JS about a failure (a damaged chunk…) of node `nodeid`, for its log. Any thread. */
void mount_log(strata_mount *m, uint64_t nodeid, const char *message);
/* Hands a read the data path could not answer (a damaged chunk) to JS, which heals the pack from its parity where it can. */
void ops_read_in_js(strata_mount *m, fuse_req_t req, uint64_t nodeid, uint64_t off, size_t size);
/* Fails every job in flight (the session ended). */
void ops_fail_all(strata_mount *m);
/* The snapshot list changed: volatile folders reload, and the kernel drops what it cached of them. */
void ops_invalidate(strata_mount *m);

/* fuse_session.c */
int session_start(strata_mount *m, const char **problem);
/* Asks the session to end (unmounts); JOB_CLOSED follows once it has. */
void session_stop(strata_mount *m);
/* Joins the threads and frees the session (after JOB_CLOSED). */
void session_finish(strata_mount *m);
void notify_inval_inode(strata_mount *m, uint64_t nodeid);
void notify_inval_entry(strata_mount *m, uint64_t parent, const uint8_t *name, uint32_t len);
/* Pushes file data into the kernel's page cache (copied); dropped when too much is queued. */
void notify_store(strata_mount *m, uint64_t nodeid, uint64_t offset, const struct iovec *iov, int count);

#endif
