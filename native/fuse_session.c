/*
 * The FUSE session and its threads: mounting, the multi-threaded request loop, the
 * notifier, and unmounting however the mount ends.
 *
 * Owns: the fuse_session, the loop thread (which runs the FUSE workers), the notifier
 * thread and its queue.
 * Threads:
 *  - session_start, session_finish: the JS thread.
 *  - session_stop: any thread; the unmount itself runs on a short-lived helper thread,
 *    because the JS thread must never wait on the mount (requests may be waiting on JS).
 *  - notify_*: any thread; they only queue. The notifier thread writes them to the
 *    kernel, which may block until a related request is answered: never from a FUSE
 *    worker or the JS thread, which could be the ones to answer it.
 * The loop ends when the kernel closes the connection: after our unmount, an unmount
 * from outside (fusermount -u, umount), or an abort. It then fails every job in flight
 * and tells JS with JOB_CLOSED.
 */
#include "fuse_mount.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bytes of file data queued for the page cache at most; more is dropped (it is only a head start). */
#define MAX_STORE_QUEUE (16u << 20)

enum notice_kind { N_INVAL_INODE, N_INVAL_ENTRY, N_STORE };

struct notice {
  notice *next;
  int kind;
  uint64_t nodeid, offset;
  size_t len;
  uint8_t data[];
};

static void queue_notice(strata_mount *m, notice *n) {
  pthread_mutex_lock(&m->notice_lock);
  if (atomic_load(&m->closing) || (n->kind == N_STORE && m->notice_bytes + n->len > MAX_STORE_QUEUE)) {
    pthread_mutex_unlock(&m->notice_lock);
    free(n);
    return;
  }
  if (n->kind == N_STORE) m->notice_bytes += n->len;
  n->next = NULL;
  if (m->notices_tail) m->notices_tail->next = n; else m->notices = n;
  m->notices_tail = n;
  pthread_cond_signal(&m->notice_cond);
  pthread_mutex_unlock(&m->notice_lock);
}

static notice *new_notice(int kind, uint64_t nodeid, uint64_t offset, const uint8_t *data, size_t len) {
  notice *n = malloc(sizeof *n + len);
  if (!n) return NULL;
  n->kind = kind;
  n->nodeid = nodeid;
  n->offset = offset;
  n->len = len;
  if (data && len) memcpy(n->data, data, len);
  return n;
}

void notify_inval_inode(strata_mount *m, uint64_t nodeid) {
  notice *n = new_notice(N_INVAL_INODE, nodeid, 0, NULL, 0);
  if (n) queue_notice(m, n);
}

void notify_inval_entry(strata_mount *m, uint64_t parent, const uint8_t *name, uint32_t len) {
  notice *n = new_notice(N_INVAL_ENTRY, parent, 0, name, len);
  if (n) queue_notice(m, n);
}

void notify_store(strata_mount *m, uint64_t nodeid, uint64_t offset, const struct iovec *iov, int count) {
  size_t len = 0;
  for (int i = 0; i < count; i++) len += iov[i].iov_len;
  notice *n = new_notice(N_STORE, nodeid, offset, NULL, len);
  if (!n) return;
  size_t at = 0;
  for (int i = 0; i < count; i++) {
    memcpy(n->data + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  queue_notice(m, n);
}

static void *notice_main(void *arg) {
  strata_mount *m = arg;
  pthread_mutex_lock(&m->notice_lock);
  for (;;) {
    while (!m->notices && !atomic_load(&m->closing)) pthread_cond_wait(&m->notice_cond, &m->notice_lock);
    notice *n = m->notices;
    if (!n) break;
    m->notices = n->next;
    if (!m->notices) m->notices_tail = NULL;
    if (n->kind == N_STORE) m->notice_bytes -= n->len;
    int closing = atomic_load(&m->closing);
    pthread_mutex_unlock(&m->notice_lock);
    if (!closing) {
      /* Failures (the kernel no longer knows the inode, say) only mean there is nothing to do. */
      if (n->kind == N_INVAL_INODE) {
        fuse_lowlevel_notify_inval_inode(m->se, n->nodeid, 0, 0);
      } else if (n->kind == N_INVAL_ENTRY) {
        fuse_lowlevel_notify_inval_entry(m->se, n->nodeid, (const char *)n->data, n->len);
      } else {
        struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(n->len);
        bufv.buf[0].mem = n->data;
        if (fuse_lowlevel_notify_store(m->se, n->nodeid, (off_t)n->offset, &bufv, 0) == 0) {
          atomic_fetch_add_explicit(&m->counters[C_STORED_BYTES], n->len, memory_order_relaxed);
        }
      }
    }
    free(n);
    pthread_mutex_lock(&m->notice_lock);
  }
  pthread_mutex_unlock(&m->notice_lock);
  return NULL;
}

static void stop_notices(strata_mount *m) {
  pthread_mutex_lock(&m->notice_lock);
  atomic_store(&m->closing, 1);
  while (m->notices) {
    notice *n = m->notices;
    m->notices = n->next;
    free(n);
  }
  m->notices_tail = NULL;
  m->notice_bytes = 0;
  pthread_cond_broadcast(&m->notice_cond);
  pthread_mutex_unlock(&m->notice_lock);
}

static void *loop_main(void *arg) {
  strata_mount *m = arg;
  struct fuse_loop_config *config = fuse_loop_cfg_create();
  if (config) {
    fuse_loop_cfg_set_max_threads(config, m->max_threads);
    fuse_loop_cfg_set_clone_fd(config, 0);
  }
  fuse_session_loop_mt(m->se, config);
  if (config) fuse_loop_cfg_destroy(config);
  stop_notices(m);
  ops_fail_all(m);
  /* Already unmounted in every way the loop can end; this closes our end of the connection. */
  fuse_session_unmount(m->se);
  job *closed = calloc(1, sizeof *closed);
  if (closed) {
    closed->kind = JOB_CLOSED;
    if (m->send_job(m, closed)) free(closed);
  }
  return NULL;
}

/* Starts a thread with every signal blocked: signals belong to Node's main thread. */
static int start_thread(pthread_t *thread, void *(*main)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(thread, NULL, main, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return err;
}

int session_start(strata_mount *m, const char **problem) {
  char options[128];
  snprintf(options, sizeof options, "ro,fsname=strata,subtype=strata,auto_unmount%s",
           m->allow_other ? ",allow_other,default_permissions" : "");
  char *argv[] = { "strata", "-o", options, NULL };
  struct fuse_args args = FUSE_ARGS_INIT(3, argv);
  pthread_mutex_init(&m->notice_lock, NULL);
  pthread_cond_init(&m->notice_cond, NULL);
  m->se = fuse_session_new(&args, &strata_ops, sizeof strata_ops, m);
  if (!m->se) return *problem = "cannot start a FUSE session (is fuse3 installed?)", EINVAL;
  /* With auto_unmount, fusermount3 stays behind and unmounts should this process die. */
  if (fuse_session_mount(m->se, m->mountpoint) != 0) {
    fuse_session_destroy(m->se);
    m->se = NULL;
    return *problem = "cannot mount (is /dev/fuse there, and fusermount3 installed?)", EIO;
  }
  if (start_thread(&m->notice_thread, notice_main, m)) {
    fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    m->se = NULL;
    return *problem = "cannot start a thread", EAGAIN;
  }
  m->notice_started = 1;
  if (start_thread(&m->loop_thread, loop_main, m)) {
    stop_notices(m);
    pthread_join(m->notice_thread, NULL);
    m->notice_started = 0;
    fuse_session_unmount(m->se);
    fuse_session_destroy(m->se);
    m->se = NULL;
    return *problem = "cannot start a thread", EAGAIN;
  }
  m->loop_started = 1;
  return 0;
}

/* Detaches the mount: the kernel closes the connection once nothing uses it any more. */
static void *unmount_main(void *arg) {
  char *mountpoint = arg;
  if (umount2(mountpoint, MNT_DETACH) != 0) {
    /* Not root: fusermount3 may unmount what this user mounted. */
    char *argv[] = { "fusermount3", "-u", "-z", "-q", mountpoint, NULL };
    pid_t pid;
    if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, NULL) == 0) waitpid(pid, NULL, 0);
  }
  free(mountpoint);
  return NULL;
}

void session_stop(strata_mount *m) {
  if (!m->loop_started || atomic_load(&m->closing)) return;
  char *copy = strdup(m->mountpoint);
  pthread_t thread;
  if (copy && start_thread(&thread, unmount_main, copy) == 0) pthread_detach(thread);
  else free(copy);
}

void session_finish(strata_mount *m) {
  if (m->loop_started) pthread_join(m->loop_thread, NULL);
  m->loop_started = 0;
  stop_notices(m);
  if (m->notice_started) pthread_join(m->notice_thread, NULL);
  m->notice_started = 0;
  if (m->se) fuse_session_destroy(m->se);
  m->se = NULL;
  pthread_mutex_destroy(&m->notice_lock);
  pthread_cond_destroy(&m->notice_cond);
}
