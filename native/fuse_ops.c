/*
 * The FUSE low-level operations of the read-only mount, answered from the inode table.
 *
 * Owns: the replies to the kernel, the requests parked on a folder that is not loaded
 * yet, and the registry of jobs handed to JS.
 * Threads: the ops run on FUSE workers; the completions (ops_*_done/failed) and the
 * replay of parked requests run on the JS thread. Everything that touches the table
 * holds its lock; replies are sent after it is released, never while holding it.
 *
 * Only a folder not loaded yet and file data reach JS; every other call (lookup,
 * getattr, readdir(plus), readlink, xattrs, lseek, statfs, forget) is answered here.
 * A snapshot never changes, so its entries get timeouts of FOREVER; the virtual folders
 * whose listing follows the snapshot list (NODE_VOLATILE) get BRIEF ones and are
 * invalidated explicitly when the list changes.
 */
#include "fuse_data.h"
#include "fuse_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FOREVER 1e9
#define BRIEF 1.0
/* Folders loaded ahead of a walk, at most this many at once, from a stack of at most AHEAD_CAP. */
#define MAX_PREFETCH 16
#define AHEAD_CAP 16384u
#define AHEAD_DEEP (1ull << 63)
/* Files pushed into the page cache ahead of a reader (see push_ahead). */
#define PUSH_FILES 256
#define PUSH_FILE_MAX (4u << 20)
#define PUSH_BYTES (32u << 20)
#define PUSH_VISITS 4096 /* entries a run looks at, at most: files pushed before are passed over */

enum parked_op { P_LOOKUP, P_READDIR, P_READDIRPLUS };

typedef struct parked {
  struct parked *next;
  int op;
  fuse_req_t req;
  size_t size;
  off_t off;
  uint32_t name_len;
  char name[];
} parked;

#define M(req) ((strata_mount *)fuse_req_userdata(req))

static void count(strata_mount *m, enum counter c) { atomic_fetch_add_explicit(&m->counters[c], 1, memory_order_relaxed); }

/* ---- jobs */

int ops_jobs_init(strata_mount *m) {
  pthread_mutex_init(&m->jobs_lock, NULL);
  m->free_slot = UINT32_MAX;
  m->ahead = calloc(AHEAD_CAP, sizeof *m->ahead);
  return m->ahead ? 0 : ENOMEM;
}

void ops_jobs_free(strata_mount *m) {
  for (uint32_t i = 0; i < m->jobs_cap; i++) free(m->jobs[i]);
  free(m->jobs);
  free(m->job_gen);
  free(m->next_slot);
  free(m->ahead);
  pthread_mutex_destroy(&m->jobs_lock);
}

/*
 * Job ids go to JS as doubles: (generation << JOB_SLOT_BITS) | slot stays below 2^52, and
 * the generation of a slot changes with every reuse, so a late answer finds nothing.
 */
#define JOB_SLOT_BITS 20
#define MAX_JOBS (1u << JOB_SLOT_BITS)

/* Registers a new job; NULL when out of memory (or a million are in flight). */
static job *job_new(strata_mount *m, uint32_t kind, uint64_t nodeid, const uint8_t *ref, uint32_t ref_len, uint32_t index) {
  job *j = calloc(1, sizeof *j + ref_len);
  if (!j) return NULL;
  j->kind = kind;
  j->nodeid = nodeid;
  j->index = index;
  j->ref_len = ref_len;
  memcpy(j->ref, ref, ref_len);
  pthread_mutex_lock(&m->jobs_lock);
  if (m->free_slot == UINT32_MAX) {
    uint32_t cap = m->jobs_cap ? m->jobs_cap * 2 : 64;
    if (cap > MAX_JOBS) {
      pthread_mutex_unlock(&m->jobs_lock);
      free(j);
      return NULL;
    }
    job **jobs = realloc(m->jobs, cap * sizeof *jobs);
    uint32_t *gen = realloc(m->job_gen, cap * sizeof *gen);
    uint32_t *next = realloc(m->next_slot, cap * sizeof *next);
    if (jobs) m->jobs = jobs;
    if (gen) m->job_gen = gen;
    if (next) m->next_slot = next;
    if (!jobs || !gen || !next) {
      pthread_mutex_unlock(&m->jobs_lock);
      free(j);
      return NULL;
    }
    for (uint32_t i = m->jobs_cap; i < cap; i++) {
      m->jobs[i] = NULL;
      m->job_gen[i] = 0;
      m->next_slot[i] = i + 1 < cap ? i + 1 : m->free_slot;
    }
    m->free_slot = m->jobs_cap;
    m->jobs_cap = cap;
  }
  uint32_t slot = m->free_slot;
  m->free_slot = m->next_slot[slot];
  m->jobs[slot] = j;
  j->id = ((uint64_t)++m->job_gen[slot] << JOB_SLOT_BITS) | slot;
  pthread_mutex_unlock(&m->jobs_lock);
  return j;
}

/* Takes a job out of the registry (the caller then owns it); NULL when unknown. */
static job *job_take(strata_mount *m, uint64_t id, uint32_t kind) {
  uint32_t slot = (uint32_t)(id & (MAX_JOBS - 1));
  job *j = NULL;
  pthread_mutex_lock(&m->jobs_lock);
  if (slot < m->jobs_cap && m->jobs[slot] && m->jobs[slot]->id == id && m->jobs[slot]->kind == kind) {
    j = m->jobs[slot];
    m->jobs[slot] = NULL;
    m->next_slot[slot] = m->free_slot;
    m->free_slot = slot;
  }
  pthread_mutex_unlock(&m->jobs_lock);
  return j;
}

static void fail_parked(parked *p, int err);
static void end_push(strata_mount *m, const job *j);

/* Hands a job to JS; if that cannot happen, fails what waits on it. */
static void send(strata_mount *m, job *j) {
  if (!j) return;
  uint64_t id = j->id;
  uint32_t kind = j->kind;
  if (!atomic_load(&m->closing) && m->send_job(m, j) == 0) return;
  if (kind == JOB_LOAD) ops_load_failed(m, id, EIO);
  else ops_read_failed(m, id, EIO);
}

/* ---- attributes and entries */

static double attr_timeout(const node *n) { return n->flags & NODE_VOLATILE ? BRIEF : FOREVER; }
static double entry_timeout(const node *parent) { return parent->flags & NODE_VOLATILE ? BRIEF : FOREVER; }

static void fill_stat(const node *n, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = n->attr.ino;
  st->st_mode = n->attr.mode;
  st->st_nlink = n->attr.nlink;
  st->st_uid = n->attr.uid;
  st->st_gid = n->attr.gid;
  st->st_rdev = n->attr.rdev;
  st->st_size = (off_t)n->attr.size;
  st->st_blocks = (blkcnt_t)n->attr.blocks;
  st->st_atim = (struct timespec){ n->attr.atime, n->attr.atime_ns };
  st->st_mtim = (struct timespec){ n->attr.mtime, n->attr.mtime_ns };
  st->st_ctim = (struct timespec){ n->attr.ctime, n->attr.ctime_ns };
}

static void fill_entry(const node *n, const node *parent, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  e->ino = n->nodeid;
  e->generation = 1;
  fill_stat(n, &e->attr);
  e->attr_timeout = attr_timeout(n);
  e->entry_timeout = entry_timeout(parent);
}

/* ---- folders that must load first */

/* Parks a request on a folder until it loads. Table lock held; 0, or replied ENOMEM. */
static int park(strata_mount *m, node *dir, int op, fuse_req_t req, size_t size, off_t off, const char *name) {
  size_t name_len = name ? strlen(name) : 0;
  parked *p = malloc(sizeof *p + name_len + 1);
  if (!p) {
    fuse_reply_err(req, ENOMEM);
    return ENOMEM;
  }
  p->op = op;
  p->req = req;
  p->size = size;
  p->off = off;
  p->name_len = (uint32_t)name_len;
  if (name) memcpy(p->name, name, name_len + 1);
  p->next = dir->parked;
  table_set_parked(m->table, dir, p);
  count(m, C_WAITED);
  return 0;
}

/* The job that loads a folder, unless one is on its way. Table lock held. */
static job *start_load(strata_mount *m, node *dir) {
  if (dir->state == DIR_LOADING) return NULL;
  job *j = job_new(m, JOB_LOAD, dir->nodeid, dir->ref, dir->ref_len, dir->index);
  if (!j) return NULL;
  table_set_loading(m->table, dir);
  count(m, C_JS_LOAD);
  return j;
}

/*
 * Folders are loaded ahead of a walk. When a listing reaches a folder, its subfolders go on
 * a stack of folders to load. Once a walk reaches a folder that was loaded ahead (ls -R, tar,
 * find, rsync, cp -r: all walk depth first), the whole subtree below follows, depth first, as
 * each load completes. At most MAX_PREFETCH loads are in flight, the stack forgets its oldest
 * entries past AHEAD_CAP, and nothing more starts once the table nears its budget.
 * Table lock held for all of these.
 */

static void ahead_push(strata_mount *m, uint64_t entry) {
  m->ahead[m->ahead_top] = entry;
  m->ahead_top = (m->ahead_top + 1) % AHEAD_CAP;
  if (m->ahead_len < AHEAD_CAP) m->ahead_len++;
}

static void push_subfolders(strata_mount *m, node *dir, int deep) {
  /* Last child first, so that the first is on top: the order a walk takes. */
  for (uint32_t i = table_child_count(dir); i-- > 0;) {
    node *c = table_child_at(dir, i);
    if (node_is_dir(c) && c->state == DIR_UNLOADED && !(c->flags & NODE_VOLATILE)) ahead_push(m, c->nodeid | (deep ? AHEAD_DEEP : 0));
  }
}

/* Starts the loads the stack holds, within the bounds; returns the jobs, chained. */
static job *pump(strata_mount *m) {
  job *chain = NULL;
  table_stats t = table_get_stats(m->table);
  while (m->prefetching < MAX_PREFETCH && m->ahead_len && t.bytes < t.budget / 4 * 3) {
    m->ahead_top = (m->ahead_top + AHEAD_CAP - 1) % AHEAD_CAP;
    m->ahead_len--;
    uint64_t entry = m->ahead[m->ahead_top];
    node *c = table_get(m->table, entry & ~AHEAD_DEEP);
    if (!c || c->state != DIR_UNLOADED) continue;
    job *j = start_load(m, c);
    if (!j) break;
    j->prefetch = 1;
    c->ahead = entry & AHEAD_DEEP ? AHEAD_WALK : AHEAD_ONE;
    m->prefetching++;
    j->next_free = chain;
    chain = j;
  }
  return chain;
}

static void send_chain(strata_mount *m, job *chain) {
  while (chain) {
    job *next = chain->next_free;
    chain->next_free = NULL;
    send(m, chain);
    chain = next;
  }
}

/* Looks up a folder for an op that needs its children; replies with an error or parks when it cannot go on yet. */
static node *folder_for(strata_mount *m, fuse_req_t req, fuse_ino_t ino, int op, size_t size, off_t off, const char *name, job **load) {
  *load = NULL;
  node *dir = table_get(m->table, ino);
  if (!dir) {
    fuse_reply_err(req, ESTALE);
    return NULL;
  }
  if (!node_is_dir(dir)) {
    fuse_reply_err(req, ENOTDIR);
    return NULL;
  }
  if (table_needs_load(dir)) {
    if (!park(m, dir, op, req, size, off, name)) *load = start_load(m, dir);
    return NULL;
  }
  return dir;
}

static void do_lookup(strata_mount *m, fuse_req_t req, fuse_ino_t parent, const char *name) {
  job *load;
  table_lock(m->table);
  node *dir = folder_for(m, req, parent, P_LOOKUP, 0, 0, name, &load);
  if (!dir) {
    table_unlock(m->table);
    send(m, load);
    return;
  }
  struct fuse_entry_param e;
  node *c = table_child(m->table, dir, (const uint8_t *)name, strlen(name));
  uint64_t id = 0;
  if (c) {
    fill_entry(c, dir, &e);
    table_ref(m->table, c, 1);
    id = c->nodeid;
  } else {
    /* A negative entry: the kernel remembers that the name is not there. */
    memset(&e, 0, sizeof e);
    e.entry_timeout = entry_timeout(dir);
  }
  table_unlock(m->table);
  if (fuse_reply_entry(req, &e) != 0 && id) {
    table_lock(m->table);
    node *again = table_get(m->table, id);
    if (again) table_forget(m->table, again, 1);
    table_unlock(m->table);
  }
}

static void do_readdir(strata_mount *m, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  job *load;
  table_lock(m->table);
  node *dir = folder_for(m, req, ino, plus ? P_READDIRPLUS : P_READDIR, size, off, NULL, &load);
  if (!dir) {
    table_unlock(m->table);
    send(m, load);
    return;
  }
  char *buf = malloc(size);
  /* Nodes counted into this reply: given back if the kernel never gets it. */
  uint64_t *counted = plus ? malloc((size / 24 + 1) * sizeof *counted) : NULL;
  if (!buf || (plus && !counted)) {
    table_unlock(m->table);
    free(buf);
    free(counted);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  size_t pos = 0, ncounted = 0;
  uint32_t n = table_child_count(dir);
  /* Offsets: 0 is ".", 1 is "..", 2 + i is child i; each entry carries the offset of the next. */
  for (off_t i = off; i < (off_t)n + 2; i++) {
    struct fuse_entry_param e;
    const char *name;
    node *c = NULL;
    if (i < 2) {
      /* The kernel ignores attributes of "." and ".." (node id 0: nothing to count). */
      memset(&e, 0, sizeof e);
      e.attr.st_mode = S_IFDIR;
      e.attr.st_ino = i == 0 || !dir->parent ? dir->attr.ino : dir->parent->attr.ino;
      name = i == 0 ? "." : "..";
    } else {
      c = table_child_at(dir, (uint32_t)(i - 2));
      fill_entry(c, dir, &e);
      name = (const char *)c->name;
    }
    size_t need = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, i + 1)
                       : fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr, i + 1);
    if (need > size - pos) break;
    pos += need;
    if (plus && c) {
      table_ref(m->table, c, 1);
      counted[ncounted++] = c->nodeid;
    }
  }
  job *ahead = NULL;
  if (off == 0) {
    /* A walk that reaches a folder loaded ahead is a recursive walk: everything below follows. */
    push_subfolders(m, dir, dir->ahead != 0);
    ahead = pump(m);
  }
  table_unlock(m->table);
  send_chain(m, ahead);
  if (fuse_reply_buf(req, buf, pos) != 0 && ncounted) {
    table_lock(m->table);
    for (size_t i = 0; i < ncounted; i++) {
      node *c = table_get(m->table, counted[i]);
      if (c) table_forget(m->table, c, 1);
    }
    table_unlock(m->table);
  }
  free(buf);
  free(counted);
}

static void fail_parked(parked *p, int err) {
  while (p) {
    parked *next = p->next;
    fuse_reply_err(p->req, err);
    free(p);
    p = next;
  }
}

/* Takes the parked requests of a folder (oldest first). Table lock held. */
static parked *unpark(strata_mount *m, node *dir) {
  parked *p = dir->parked, *reversed = NULL;
  table_set_parked(m->table, dir, NULL);
  while (p) {
    parked *next = p->next;
    p->next = reversed;
    reversed = p;
    p = next;
  }
  return reversed;
}

static void run_parked(strata_mount *m, uint64_t dir_id, parked *p) {
  while (p) {
    parked *next = p->next;
    if (p->op == P_LOOKUP) do_lookup(m, p->req, dir_id, p->name);
    else do_readdir(m, p->req, dir_id, p->size, p->off, p->op == P_READDIRPLUS);
    free(p);
    p = next;
  }
}

int ops_load_done(strata_mount *m, uint64_t id, const uint8_t *batch, size_t len, const char **problem) {
  job *j = job_take(m, id, JOB_LOAD);
  if (!j) return ENOENT;
  table_lock(m->table);
  if (j->prefetch) m->prefetching--;
  node *dir = table_get(m->table, j->nodeid);
  int err = 0;
  parked *p = NULL;
  if (dir) {
    err = table_load(m->table, dir, batch, len, problem);
    p = unpark(m, dir);
    if (!err && dir->ahead == AHEAD_WALK) push_subfolders(m, dir, 1);
  }
  job *ahead = pump(m);
  table_unlock(m->table);
  send_chain(m, ahead);
  if (err) fail_parked(p, EIO);
  else run_parked(m, j->nodeid, p);
  free(j);
  return 0;
}

int ops_load_failed(strata_mount *m, uint64_t id, int err) {
  job *j = job_take(m, id, JOB_LOAD);
  if (!j) return ENOENT;
  table_lock(m->table);
  if (j->prefetch) m->prefetching--;
  node *dir = table_get(m->table, j->nodeid);
  parked *p = NULL;
  if (dir) {
    table_load_failed(m->table, dir);
    p = unpark(m, dir);
  }
  job *ahead = pump(m);
  table_unlock(m->table);
  send_chain(m, ahead);
  fail_parked(p, err);
  free(j);
  return 0;
}

void mount_log(strata_mount *m, uint64_t nodeid, const char *message) {
  size_t len = strlen(message);
  job *j = calloc(1, sizeof *j + len);
  if (!j) return;
  j->kind = JOB_LOG;
  j->nodeid = nodeid;
  j->ref_len = (uint32_t)len;
  memcpy(j->ref, message, len);
  if (atomic_load(&m->closing) || m->send_job(m, j)) free(j);
}

int ops_read_done(strata_mount *m, uint64_t id, const struct iovec *iov, int count_) {
  job *j = job_take(m, id, JOB_READ);
  if (!j) return ENOENT;
  if (j->req) {
    fuse_reply_iov(j->req, iov, count_);
  } else {
    notify_store(m, j->nodeid, j->offset, iov, count_);
    end_push(m, j);
  }
  free(j);
  return 0;
}

int ops_read_failed(strata_mount *m, uint64_t id, int err) {
  job *j = job_take(m, id, JOB_READ);
  if (!j) return ENOENT;
  if (j->req) fuse_reply_err(j->req, err);
  else end_push(m, j);
  free(j);
  return 0;
}

void ops_fail_all(strata_mount *m) {
  for (;;) {
    uint64_t id = 0;
    uint32_t kind = 0;
    pthread_mutex_lock(&m->jobs_lock);
    for (uint32_t i = 0; i < m->jobs_cap && !id; i++) {
      if (m->jobs[i]) {
        id = m->jobs[i]->id;
        kind = m->jobs[i]->kind;
      }
    }
    pthread_mutex_unlock(&m->jobs_lock);
    if (!id) return;
    if (kind == JOB_LOAD) ops_load_failed(m, id, EIO);
    else if (kind == JOB_READ) ops_read_failed(m, id, EIO);
    else free(job_take(m, id, kind));
  }
}

static void invalidate_one(void *ctx, node *dir) { notify_inval_inode((strata_mount *)ctx, dir->nodeid); }

void ops_invalidate(strata_mount *m) {
  table_lock(m->table);
  table_mark_stale(m->table, invalidate_one, m);
  table_unlock(m->table);
}

/* ---- the ops */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  strata_mount *m = userdata;
  /* Readdirplus always (a listing then needs no lookups), never "auto" (it re-lists warm folders). */
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
  /* Content never changes: keep the page cache across opens and attribute refreshes. */
  conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  /* No open/opendir round trips: the kernel then caches data and listings as if kept. */
  m->no_open = !!(conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
  m->no_opendir = !!(conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT);
  /* The kernel would fetch and enforce ACLs itself, at a call per inode and path walk. */
  conn->want &= ~(unsigned)FUSE_CAP_POSIX_ACL;
  conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  conn->time_gran = 1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  count(M(req), C_LOOKUP);
  do_lookup(M(req), req, parent, name);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  strata_mount *m = M(req);
  count(m, C_FORGET);
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  if (n) table_forget(m->table, n, nlookup);
  table_unlock(m->table);
  fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count_, struct fuse_forget_data *forgets) {
  strata_mount *m = M(req);
  count(m, C_FORGET);
  table_lock(m->table);
  for (size_t i = 0; i < count_; i++) {
    node *n = table_get(m->table, forgets[i].ino);
    if (n) table_forget(m->table, n, forgets[i].nlookup);
  }
  table_unlock(m->table);
  fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  strata_mount *m = M(req);
  count(m, C_GETATTR);
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  struct stat st;
  double timeout = 0;
  if (n) {
    fill_stat(n, &st);
    timeout = attr_timeout(n);
  }
  table_unlock(m->table);
  if (n) fuse_reply_attr(req, &st, timeout);
  else fuse_reply_err(req, ESTALE);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  strata_mount *m = M(req);
  count(m, C_READLINK);
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  int err = !n ? ESTALE : !node_is_symlink(n) ? EINVAL : 0;
  char *target = NULL;
  /* A target that is empty or holds a NUL cannot be shown as the path it is: refused. */
  if (!err && (n->target_len == 0 || memchr(n->target, 0, n->target_len))) err = EIO;
  if (!err && !(target = strndup((const char *)n->target, n->target_len))) err = ENOMEM;
  table_unlock(m->table);
  if (err) fuse_reply_err(req, err);
  else fuse_reply_readlink(req, target);
  free(target);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  strata_mount *m = M(req);
  count(m, C_OPEN);
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (m->no_open) {
    /* From now on the kernel opens files without asking, keeping their page cache. */
    fuse_reply_err(req, ENOSYS);
    return;
  }
  (void)ino;
  fi->keep_cache = 1;
  fi->noflush = 1;
  fuse_reply_open(req, fi);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  strata_mount *m = M(req);
  count(m, C_OPENDIR);
  if (m->no_opendir) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  int is_volatile = n && (n->flags & NODE_VOLATILE);
  table_unlock(m->table);
  fi->cache_readdir = !is_volatile;
  fi->keep_cache = !is_volatile;
  fuse_reply_open(req, fi);
}

/*
 * Files are pushed into the page cache ahead of a reader that goes through a tree file by
 * file (tar, cp -r, rsync, Samba copying a folder): their reads then never reach us. A read
 * at offset 0 of a file not pushed is the sign. From there on, in the order a depth-first
 * walk takes (the rest of the folder with each subfolder's files where it stands, then the
 * folders after it), files are read and stored (or, where the kernel has not listed their
 * folder yet and so cannot take them, read into the chunk cache): at most PUSH_FILES, none larger than
 * PUSH_FILE_MAX, at most PUSH_BYTES in flight, through loaded folders only (an unloaded one
 * ends the run: the folder prefetch is loading it, and the next miss goes on from there),
 * never above a virtual folder. Nothing is pushed twice. Large files are left to the
 * kernel's readahead. Table lock held.
 */

static job *push_ahead(strata_mount *m, node *n) {
  job *chain = NULL;
  n->pushed = 1;
  node *dir = n->parent;
  if (!n->attached || !dir || !dir->dir) return NULL;
  uint32_t i = n->index + 1, pushed = 0;
  for (uint32_t visits = 0; pushed < PUSH_FILES && visits < PUSH_VISITS; visits++) {
    if (i >= table_child_count(dir)) {
      node *up = dir->parent;
      if (!up || !dir->attached || !up->dir || (up->flags & NODE_VOLATILE)) break;
      i = dir->index + 1;
      dir = up;
      continue;
    }
    node *c = table_child_at(dir, i);
    if (node_is_dir(c)) {
      if (c->state != DIR_LOADED || c->stale) break;
      dir = c;
      i = 0;
      continue;
    }
    i++;
    if (!node_is_file(c) || c->pushed || c->attr.size == 0 || c->attr.size > PUSH_FILE_MAX) continue;
    if (!c->nlookup && (c->preloaded || !m->data)) continue;
    if (m->push_inflight + c->attr.size > PUSH_BYTES) break;
    if (m->data) {
      if (!data_push(m->data, m->table, c)) break; /* read (and stored) in C */
      if (!c->nlookup) {
        c->preloaded = 1; /* only into the chunk cache: pushed once the kernel lists its folder */
        continue;
      }
    } else {
      uint32_t len, index;
      const uint8_t *ref = table_read_ref(c, &len, &index);
      job *j = job_new(m, JOB_READ, c->nodeid, ref, len, index);
      if (!j) break;
      j->size = (uint32_t)c->attr.size;
      j->next_free = chain;
      chain = j;
    }
    c->pushed = 1;
    m->push_inflight += c->attr.size;
    pushed++;
    count(m, C_PUSHED);
  }
  return chain;
}

static void end_push(strata_mount *m, const job *j) {
  table_lock(m->table);
  m->push_inflight -= j->size;
  table_unlock(m->table);
}

/* A read answered by JS (the table lock held): NULL when out of memory. */
static job *read_job(strata_mount *m, fuse_req_t req, node *n, size_t size, uint64_t off) {
  uint32_t len, index;
  const uint8_t *ref = table_read_ref(n, &len, &index);
  job *j = job_new(m, JOB_READ, n->nodeid, ref, len, index);
  if (!j) return NULL;
  j->req = req;
  j->offset = off;
  uint64_t left = n->attr.size - off;
  j->size = (uint32_t)(size < left ? size : left);
  return j;
}

void ops_read_in_js(strata_mount *m, fuse_req_t req, uint64_t nodeid, uint64_t off, size_t size) {
  table_lock(m->table);
  node *n = table_get(m->table, nodeid);
  job *j = n && node_is_file(n) && off < n->attr.size ? read_job(m, req, n, size, off) : NULL;
  table_unlock(m->table);
  if (!j) {
    fuse_reply_err(req, EIO);
    return;
  }
  count(m, C_JS_READ);
  send(m, j);
}

static void do_read(strata_mount *m, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  int err = !n ? ESTALE : !node_is_file(n) ? EISDIR : 0;
  job *j = NULL, *ahead = NULL;
  if (!err && (uint64_t)off >= n->attr.size) {
    table_unlock(m->table);
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  if (!err && !m->data && !(j = read_job(m, req, n, size, (uint64_t)off))) err = ENOMEM;
  if (!err && off == 0) ahead = push_ahead(m, n);
  table_unlock(m->table);
  if (err) {
    fuse_reply_err(req, err);
  } else if (m->data) {
    data_read(m->data, req, ino, (uint64_t)off, size);
  } else {
    count(m, C_JS_READ);
    send(m, j);
  }
  send_chain(m, ahead);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  count(M(req), C_READ);
  do_read(M(req), req, ino, size, off);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  count(M(req), C_READDIR);
  do_readdir(M(req), req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  count(M(req), C_READDIRPLUS);
  do_readdir(M(req), req, ino, size, off, 1);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  count(M(req), C_STATFS);
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

/* EOPNOTSUPP for a namespace no snapshot uses: `ls -l` then stops asking for it on this mount. */
static int unsupported_namespace(strata_mount *m, const char *name) {
  if (!strncmp(name, "security.", 9)) return !atomic_load(&m->has_security);
  if (!strncmp(name, "system.", 7)) return !atomic_load(&m->has_system);
  return 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  strata_mount *m = M(req);
  count(m, C_GETXATTR);
  if (unsupported_namespace(m, name)) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  size_t name_len = strlen(name);
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  int err = n ? ENODATA : ESTALE;
  char *value = NULL;
  uint32_t vlen = 0;
  for (uint32_t at = 0; n && at < n->xattrs_len;) {
    uint32_t nlen, len;
    memcpy(&nlen, n->xattrs + at, 4);
    memcpy(&len, n->xattrs + at + 4, 4);
    const uint8_t *p = n->xattrs + at + 8;
    if (nlen == name_len && !memcmp(p, name, nlen)) {
      vlen = len;
      err = size == 0 ? 0 : size < len ? ERANGE : 0;
      if (!err && size && !(value = malloc(len ? len : 1))) err = ENOMEM;
      if (value) memcpy(value, p + nlen, len);
      break;
    }
    at += 8 + nlen + len;
  }
  table_unlock(m->table);
  if (err) fuse_reply_err(req, err);
  else if (size == 0) fuse_reply_xattr(req, vlen);
  else fuse_reply_buf(req, value, vlen);
  free(value);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  strata_mount *m = M(req);
  count(m, C_LISTXATTR);
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  size_t total = 0;
  for (uint32_t at = 0; n && at < n->xattrs_len;) {
    uint32_t nlen, len;
    memcpy(&nlen, n->xattrs + at, 4);
    memcpy(&len, n->xattrs + at + 4, 4);
    total += nlen + 1;
    at += 8 + nlen + len;
  }
  int err = !n ? ESTALE : (size && size < total) ? ERANGE : 0;
  char *names = NULL;
  if (!err && size && total && !(names = malloc(total))) err = ENOMEM;
  if (names) {
    size_t pos = 0;
    for (uint32_t at = 0; at < n->xattrs_len;) {
      uint32_t nlen, len;
      memcpy(&nlen, n->xattrs + at, 4);
      memcpy(&len, n->xattrs + at + 4, 4);
      memcpy(names + pos, n->xattrs + at + 8, nlen);
      names[pos + nlen] = 0;
      pos += nlen + 1;
      at += 8 + nlen + len;
    }
  }
  table_unlock(m->table);
  if (err) fuse_reply_err(req, err);
  else if (size == 0) fuse_reply_xattr(req, total);
  else fuse_reply_buf(req, names, total);
  free(names);
}

/* SEEK_DATA / SEEK_HOLE from the stored extents; a file that is not sparse is data up to its end. */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  (void)fi;
  strata_mount *m = M(req);
  count(m, C_LSEEK);
  table_lock(m->table);
  node *n = table_get(m->table, ino);
  int err = !n ? ESTALE : (whence != SEEK_DATA && whence != SEEK_HOLE) ? EINVAL : 0;
  uint64_t size = n ? n->attr.size : 0, pos = (uint64_t)off, result = 0;
  if (!err && (off < 0 || pos >= size)) err = ENXIO;
  if (!err && !(n->flags & NODE_SPARSE)) {
    result = whence == SEEK_DATA ? pos : size;
  } else if (!err) {
    /* Extents are sorted [start, end) ranges; adjacent ones merge into one run of data. */
    result = whence == SEEK_DATA ? UINT64_MAX : pos;
    for (uint32_t at = 0; at < n->extents_len; at += 16) {
      uint64_t start, end;
      memcpy(&start, n->extents + at, 8);
      memcpy(&end, n->extents + at + 8, 8);
      if (end > size) end = size;
      if (end <= pos) continue;
      if (whence == SEEK_DATA) {
        result = start > pos ? start : pos;
        break;
      }
      if (start > result) break; /* pos (or the end of the run so far) is in a hole */
      result = end;
    }
    if (whence == SEEK_DATA && result >= size) err = ENXIO;
    if (whence == SEEK_HOLE && result > size) result = size;
  }
  table_unlock(m->table);
  if (err) fuse_reply_err(req, err);
  else fuse_reply_lseek(req, (off_t)result);
}

/* Everything that would change the mount: refused (the mount is also "ro", so these rarely arrive). */
static void refuse(fuse_req_t req) {
  count(M(req), C_OTHER);
  fuse_reply_err(req, EROFS);
}
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  (void)ino; (void)attr; (void)to_set; (void)fi;
  refuse(req);
}
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  (void)parent; (void)name; (void)mode; (void)rdev;
  refuse(req);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  (void)parent; (void)name; (void)mode;
  refuse(req);
}
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  (void)parent; (void)name;
  refuse(req);
}
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  (void)link; (void)parent; (void)name;
  refuse(req);
}
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned flags) {
  (void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
  refuse(req);
}
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  (void)ino; (void)newparent; (void)newname;
  refuse(req);
}
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino; (void)buf; (void)size; (void)off; (void)fi;
  refuse(req);
}
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  (void)ino; (void)name; (void)value; (void)size; (void)flags;
  refuse(req);
}
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  (void)ino; (void)name;
  refuse(req);
}
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  (void)parent; (void)name; (void)mode; (void)fi;
  refuse(req);
}

const struct fuse_lowlevel_ops strata_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .forget = op_forget,
  .forget_multi = op_forget_multi,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .open = op_open,
  .read = op_read,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .readdirplus = op_readdirplus,
  .statfs = op_statfs,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
  .lseek = op_lseek,
  .setattr = op_setattr,
  .mknod = op_mknod,
  .mkdir = op_mkdir,
  .unlink = op_unlink,
  .rmdir = op_unlink,
  .symlink = op_symlink,
  .rename = op_rename,
  .link = op_link,
  .write = op_write,
  .setxattr = op_setxattr,
  .removexattr = op_removexattr,
  .create = op_create,
};
