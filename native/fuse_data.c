/*
 * The mount's data path for a local repository (see fuse_data.h).
 *
 * Owns: the chunk cache, the pack table and its open files, the ahead queue and its two
 * workers. One mutex (dp->lock) guards all of them; chunks are read and opened outside
 * it, by whichever thread needs them first, and others needing the same chunk wait on
 * dp->loaded. The table lock is taken only to copy what a node's layout says, never
 * while dp->lock is held.
 */
#include "fuse_data.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AHEAD_WORKERS 2
#define AHEAD_TASKS 1024
#define MAX_OPEN_PACKS 64
/* Chunks of files whose folder the kernel has not listed yet, loaded for a reader to come: at most this much. */
#define AHEAD_CACHE_BYTES (4u << 20)
#define READ_CHUNKS 8 /* chunks one read may span (reads are at most 1 MiB; chunks at least 512 KiB) */
#define CHUNK_RECORD 88
/* A sequential reader has the next chunks loaded ahead, this much of them (both ahead workers busy). */
#define READ_AHEAD_BYTES (4u << 20)
#define READ_AHEAD_CHUNKS 4

typedef struct cached {
  uint8_t id[BLOB_ID_BYTES];
  uint8_t *data;
  uint32_t size;
  int ready;  /* opened; until then whoever loads it owns it and others wait */
  int ahead;  /* loaded ahead of a reader that has not come to it yet */
  int used;   /* a reader read it */
  int refs;   /* readers using data right now (plus the loader) */
  struct cached *next_in_bucket;
  struct cached *lru_prev, *lru_next; /* ready and unused: may be dropped, oldest first */
} cached;

typedef struct chunk_list {
  cached *head, *tail;
} chunk_list;

typedef struct pack {
  uint8_t id[BLOB_ID_BYTES];
  int fd;
  int users;
  int reopen; /* found damaged: JS may heal it (a new file in its place), so it is opened again once unused */
  uint64_t last_used;
} pack;

enum task_kind { T_LOAD, T_PUSH };

typedef struct task {
  struct task *next;
  int kind;
  uint64_t nodeid;  /* T_PUSH */
  uint64_t bytes;   /* T_PUSH: counted against the push budget until done; T_LOAD: loaded ahead of a reader
                       into the cache (0: the next chunk of a file read sequentially) */
  chunk_loc loc;    /* T_LOAD */
} task;

struct data_path {
  strata_mount *m;
  blob_keys keys;
  char *pack_root;
  pthread_mutex_t lock;
  pthread_cond_t loaded, work;
  cached **buckets;
  size_t nbuckets, cache_bytes, cache_limit;
  /* Unused chunks: those readers used (least recently used last), and those loaded ahead of a
     reader that has not come yet (oldest last; at most AHEAD_CACHE_BYTES with those queued). */
  chunk_list kept, ahead;
  size_t ahead_bytes, ahead_queued;
  pack *packs;
  uint32_t npacks, packs_cap, open_packs;
  uint32_t *pack_slots; /* pack ids to indexes: at most half full */
  size_t pack_slots_cap;
  uint64_t clock;
  task *tasks, *tasks_tail;
  uint32_t ntasks;
  int stopping;
  pthread_t workers[AHEAD_WORKERS];
  int nworkers;
};

static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static size_t bucket_of(const data_path *dp, const uint8_t *id) { return get_u64(id) % dp->nbuckets; }

/* ---- the cache (dp->lock held) */

static void unlink_chunk(data_path *dp, cached *c) {
  chunk_list *l = c->ahead ? &dp->ahead : &dp->kept;
  if (c->lru_prev) c->lru_prev->lru_next = c->lru_next; else if (l->head == c) l->head = c->lru_next;
  if (c->lru_next) c->lru_next->lru_prev = c->lru_prev; else if (l->tail == c) l->tail = c->lru_prev;
  c->lru_prev = c->lru_next = NULL;
}

static void push_front(chunk_list *l, cached *c) {
  c->lru_prev = NULL;
  c->lru_next = l->head;
  if (l->head) l->head->lru_prev = c; else l->tail = c;
  l->head = c;
}

static void forget_chunk(data_path *dp, cached *c) {
  cached **p = &dp->buckets[bucket_of(dp, c->id)];
  while (*p != c) p = &(*p)->next_in_bucket;
  *p = c->next_in_bucket;
  unlink_chunk(dp, c);
  dp->cache_bytes -= c->size;
  if (c->ahead) dp->ahead_bytes -= c->size;
  blob_free(c->data, c->size);
  free(c);
}

static void trim(data_path *dp) {
  while (dp->ahead_bytes > AHEAD_CACHE_BYTES && dp->ahead.tail) forget_chunk(dp, dp->ahead.tail);
  while (dp->cache_bytes > dp->cache_limit && dp->kept.tail) forget_chunk(dp, dp->kept.tail);
  while (dp->cache_bytes > dp->cache_limit && dp->ahead.tail) forget_chunk(dp, dp->ahead.tail);
}

/*
 * Done with a chunk. A reader's chunk is kept as the most recently used; one loaded ahead of
 * a reader is kept as the first to go (it must not push out what readers use now); one
 * pushed into the page cache is not kept at all (the kernel has it now).
 */
enum keep { KEEP, KEEP_AHEAD, DROP };

static void release(data_path *dp, cached *c, enum keep keep) {
  pthread_mutex_lock(&dp->lock);
  if (--c->refs == 0) {
    if (keep == DROP) {
      forget_chunk(dp, c);
    } else if (keep == KEEP_AHEAD && !c->used) {
      c->ahead = 1;
      dp->ahead_bytes += c->size;
      push_front(&dp->ahead, c);
    } else {
      if (keep == KEEP) c->used = 1;
      push_front(&dp->kept, c);
    }
    trim(dp);
  }
  pthread_mutex_unlock(&dp->lock);
}

/* ---- packs (dp->lock held, except pack_read) */

/* The index of a pack in the table, added when new (the map from id to index is open addressing). */
static int pack_index(data_path *dp, const uint8_t *id, uint32_t *index) {
  size_t mask = dp->pack_slots_cap - 1;
  for (size_t j = get_u64(id) & mask; dp->pack_slots_cap && dp->pack_slots[j] != UINT32_MAX; j = (j + 1) & mask) {
    if (!memcmp(dp->packs[dp->pack_slots[j]].id, id, BLOB_ID_BYTES)) return *index = dp->pack_slots[j], 0;
  }
  if (dp->npacks == dp->packs_cap) {
    uint32_t cap = dp->packs_cap ? dp->packs_cap * 2 : 64;
    pack *packs = realloc(dp->packs, cap * sizeof *packs);
    uint32_t *slots = malloc(2 * (size_t)cap * sizeof *slots);
    if (!packs || !slots) {
      if (packs) dp->packs = packs;
      free(slots);
      return ENOMEM;
    }
    dp->packs = packs;
    dp->packs_cap = cap;
    free(dp->pack_slots);
    dp->pack_slots = slots;
    dp->pack_slots_cap = 2 * (size_t)cap;
    memset(slots, 0xff, dp->pack_slots_cap * sizeof *slots);
    for (uint32_t i = 0; i < dp->npacks; i++) {
      size_t j = get_u64(dp->packs[i].id) & (dp->pack_slots_cap - 1);
      while (slots[j] != UINT32_MAX) j = (j + 1) & (dp->pack_slots_cap - 1);
      slots[j] = i;
    }
  }
  pack *p = &dp->packs[dp->npacks];
  memcpy(p->id, id, BLOB_ID_BYTES);
  p->fd = -1;
  p->users = 0;
  size_t j = get_u64(id) & (dp->pack_slots_cap - 1);
  while (dp->pack_slots[j] != UINT32_MAX) j = (j + 1) & (dp->pack_slots_cap - 1);
  dp->pack_slots[j] = dp->npacks;
  *index = dp->npacks++;
  return 0;
}

/* Why a chunk cannot be read when it is not damage (which JS may heal from parity: see damaged()). */
static const char PACK_MISSING[] = "is in a pack that is missing";
static const char PACK_UNOPENED[] = "is in a pack that cannot be opened";
static const char OUT_OF_MEMORY[] = "cannot be read (out of memory)";
static const char READ_ERROR[] = "cannot be read from its pack (I/O error)";

/* Whether a chunk's problem is damage to its pack's bytes (it failed to open, or the pack is cut short). */
static int damaged(const char *problem) {
  return problem != PACK_MISSING && problem != PACK_UNOPENED && problem != OUT_OF_MEMORY && problem != READ_ERROR;
}

/* An open file for pack `index` (counted as in use until pack_done). */
static int pack_open(data_path *dp, uint32_t index, const char **problem) {
  pack *p = &dp->packs[index];
  p->last_used = ++dp->clock;
  if (p->fd >= 0 && p->reopen && !p->users) {
    close(p->fd);
    p->fd = -1;
    p->reopen = 0;
    dp->open_packs--;
  }
  if (p->fd < 0) {
    if (dp->open_packs >= MAX_OPEN_PACKS) {
      pack *oldest = NULL;
      for (uint32_t i = 0; i < dp->npacks; i++) {
        pack *q = &dp->packs[i];
        if (q->fd >= 0 && !q->users && (!oldest || q->last_used < oldest->last_used)) oldest = q;
      }
      if (oldest) {
        close(oldest->fd);
        oldest->fd = -1;
        dp->open_packs--;
      }
    }
    char path[4096], hex[2 * BLOB_ID_BYTES + 1];
    for (int i = 0; i < BLOB_ID_BYTES; i++) snprintf(hex + 2 * i, 3, "%02x", p->id[i]);
    snprintf(path, sizeof path, "%s/%.2s/%s", dp->pack_root, hex, hex);
    p->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) {
      *problem = errno == ENOENT ? PACK_MISSING : PACK_UNOPENED;
      return -1;
    }
    dp->open_packs++;
  }
  p->users++;
  return p->fd;
}

/* Loads and opens one chunk into a new cache entry's data. No lock held. */
static const char *load_chunk(data_path *dp, const chunk_loc *loc, cached *c) {
  const char *problem = NULL;
  pthread_mutex_lock(&dp->lock);
  int fd = pack_open(dp, loc->pack, &problem);
  pthread_mutex_unlock(&dp->lock);
  if (fd < 0) return problem;
  uint8_t *sealed = blob_alloc(loc->length);
  c->data = blob_alloc(loc->raw_length);
  if (!sealed || !c->data) {
    problem = OUT_OF_MEMORY;
  } else {
    ssize_t got = pread(fd, sealed, loc->length, (off_t)loc->offset);
    if (got < 0) problem = READ_ERROR;
    else if ((uint32_t)got != loc->length) problem = "is cut short: the pack is truncated";
    else problem = blob_open(&dp->keys, sealed, loc->length, (int)loc->compressed, c->data, loc->raw_length, loc->id);
    atomic_fetch_add_explicit(&dp->m->counters[C_OPENED], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&dp->m->counters[C_OPENED_BYTES], loc->raw_length, memory_order_relaxed);
  }
  blob_free(sealed, loc->length);
  pthread_mutex_lock(&dp->lock);
  dp->packs[loc->pack].users--;
  pthread_mutex_unlock(&dp->lock);
  return problem;
}

/* The opened chunk, in use by the caller until release(); NULL and *problem when it cannot be read. */
static cached *get_chunk(data_path *dp, const chunk_loc *loc, const char **problem) {
  pthread_mutex_lock(&dp->lock);
  for (;;) {
    cached *c = dp->buckets[bucket_of(dp, loc->id)];
    while (c && memcmp(c->id, loc->id, BLOB_ID_BYTES)) c = c->next_in_bucket;
    if (!c) break;
    if (c->ready) {
      if (c->refs++ == 0) {
        unlink_chunk(dp, c);
        if (c->ahead) dp->ahead_bytes -= c->size;
        c->ahead = 0;
      }
      pthread_mutex_unlock(&dp->lock);
      return c;
    }

    pthread_cond_wait(&dp->loaded, &dp->lock); /* another thread loads it; it may also fail */
  }
  cached *c = calloc(1, sizeof *c);
  if (!c) {
    pthread_mutex_unlock(&dp->lock);
    *problem = OUT_OF_MEMORY;
    return NULL;
  }
  memcpy(c->id, loc->id, BLOB_ID_BYTES);
  c->refs = 1;
  c->size = loc->raw_length;
  size_t b = bucket_of(dp, loc->id);
  c->next_in_bucket = dp->buckets[b];
  dp->buckets[b] = c;
  dp->cache_bytes += c->size;
  pthread_mutex_unlock(&dp->lock);
  *problem = load_chunk(dp, loc, c);
  pthread_mutex_lock(&dp->lock);
  if (*problem) {
    /* Damage is reported to each reader, never cached. */
    c->refs = 0;
    forget_chunk(dp, c);
    c = NULL;
  } else {
    c->ready = 1;
  }
  pthread_cond_broadcast(&dp->loaded);
  pthread_mutex_unlock(&dp->lock);
  return c;
}

/* ---- layouts */

/* Copies the locations of the chunks covering [off, off + size) of a layout; *first is the first one's index. */
static uint32_t copy_span(const layout *l, uint64_t off, uint64_t size, chunk_loc *out, uint64_t *starts, uint32_t max, uint32_t *first) {
  uint32_t lo = 0, hi = l->count;
  while (lo + 1 < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (l->starts[mid] <= off) lo = mid; else hi = mid;
  }
  *first = lo;
  uint32_t n = 0;
  for (uint32_t i = lo; i < l->count && l->starts[i] < off + size && n < max; i++, n++) {
    out[n] = l->chunks[i];
    starts[n] = l->starts[i];
  }
  return n;
}

static layout *new_layout(uint32_t count, const char *problem, size_t problem_len) {
  layout *l = calloc(1, sizeof *l + (size_t)count * sizeof(chunk_loc) + (size_t)(count + 1) * sizeof(uint64_t) + problem_len + 1);
  if (!l) return NULL;
  l->count = count;
  l->starts = (uint64_t *)(l->chunks + count);
  if (problem) {
    l->problem = (char *)(l->starts + count + 1);
    memcpy(l->problem, problem, problem_len);
  }
  return l;
}

layout *data_layout(data_path *dp, table *t, node *n) {
  if (n->layout) return n->layout;
  layout *l;
  if (n->flags & NODE_UNREADABLE) {
    l = new_layout(0, (const char *)n->chunks, n->chunks_len);
  } else if (n->chunks_len % CHUNK_RECORD) {
    static const char malformed[] = "has a malformed chunk list";
    l = new_layout(0, malformed, sizeof malformed - 1);
  } else {
    uint32_t count = n->chunks_len / CHUNK_RECORD;
    l = new_layout(count, NULL, 0);
    uint64_t total = 0;
    for (uint32_t i = 0; l && i < count; i++) {
      const uint8_t *r = n->chunks + (size_t)i * CHUNK_RECORD;
      chunk_loc *c = &l->chunks[i];
      memcpy(c->id, r, BLOB_ID_BYTES);
      pthread_mutex_lock(&dp->lock);
      int err = pack_index(dp, r + 32, &c->pack);
      pthread_mutex_unlock(&dp->lock);
      if (err) {
        free(l);
        return NULL;
      }
      c->offset = get_u64(r + 64);
      c->length = get_u32(r + 72);
      c->raw_length = get_u32(r + 76);
      c->compressed = get_u32(r + 80);
      l->starts[i] = total;
      total += c->raw_length;
    }
    if (l) l->starts[count] = total;
    if (l && total != n->attr.size) {
      free(l);
      static const char mismatch[] = "has chunks that do not add up to its size";
      l = new_layout(0, mismatch, sizeof mismatch - 1);
    }
  }
  if (l) table_set_layout(t, n, l, (uint32_t)(sizeof *l + (size_t)l->count * (sizeof(chunk_loc) + sizeof(uint64_t))));
  return l;
}

/* ---- reads */

static void queue_task(data_path *dp, task *t) {
  if (dp->tasks_tail) dp->tasks_tail->next = t; else dp->tasks = t;
  dp->tasks_tail = t;
  dp->ntasks++;
  pthread_cond_signal(&dp->work);
}

void data_read(data_path *dp, fuse_req_t req, uint64_t nodeid, uint64_t off, size_t size) {
  chunk_loc locs[READ_CHUNKS], ahead[READ_AHEAD_CHUNKS];
  uint64_t starts[READ_CHUNKS];
  char problem_copy[256] = "";
  uint32_t count = 0, first = 0, next = 0;
  table_lock(dp->m->table);
  node *n = table_get(dp->m->table, nodeid);
  layout *l = n ? data_layout(dp, dp->m->table, n) : NULL;
  uint64_t file_size = n ? n->attr.size : 0;
  if (l && l->problem) {
    snprintf(problem_copy, sizeof problem_copy, "%s", l->problem);
  } else if (l) {
    count = copy_span(l, off, size, locs, starts, READ_CHUNKS, &first);
    /* The chunks after the last one read, READ_AHEAD_BYTES of them: a sequential reader comes to them next. */
    uint64_t bytes = 0;
    for (uint32_t i = first + count; i < l->count && next < READ_AHEAD_CHUNKS && bytes < READ_AHEAD_BYTES; i++) {
      ahead[next++] = l->chunks[i];
      bytes += l->chunks[i].raw_length;
    }
  }
  table_unlock(dp->m->table);
  if (!l) {
    fuse_reply_err(req, ESTALE);
    return;
  }
  if (problem_copy[0]) {
    mount_log(dp->m, nodeid, problem_copy);
    fuse_reply_err(req, EIO);
    return;
  }
  if (off + size > file_size) size = file_size - off;
  cached *got[READ_CHUNKS];
  struct iovec iov[READ_CHUNKS];
  uint32_t have = 0;
  const char *problem = NULL;
  for (; have < count; have++) {
    got[have] = get_chunk(dp, &locs[have], &problem);
    if (!got[have]) break;
    uint64_t from = off > starts[have] ? off - starts[have] : 0;
    uint64_t end = off + size - starts[have];
    if (end > got[have]->size) end = got[have]->size;
    iov[have].iov_base = got[have]->data + from;
    iov[have].iov_len = end - from;
  }
  if (problem) {
    if (damaged(problem)) {
      /* JS reads it instead: it heals the pack from its parity (or names the damage), and the pack is opened anew. */
      pthread_mutex_lock(&dp->lock);
      dp->packs[locs[have].pack].reopen = 1;
      pthread_mutex_unlock(&dp->lock);
      for (uint32_t i = 0; i < have; i++) release(dp, got[i], KEEP);
      ops_read_in_js(dp->m, req, nodeid, off, size);
      return;
    }
    char message[512], hex[2 * BLOB_ID_BYTES + 1], pack_hex[2 * BLOB_ID_BYTES + 1];
    for (int i = 0; i < BLOB_ID_BYTES; i++) {
      snprintf(hex + 2 * i, 3, "%02x", locs[have].id[i]);
      snprintf(pack_hex + 2 * i, 3, "%02x", dp->packs[locs[have].pack].id[i]);
    }
    snprintf(message, sizeof message, "data blob %s in pack %s %s", hex, pack_hex, problem);
    mount_log(dp->m, nodeid, message);
    fuse_reply_err(req, EIO);
  } else {
    fuse_reply_iov(req, iov, (int)have);
    pthread_mutex_lock(&dp->lock);
    for (uint32_t i = 0; i < next && dp->ntasks < AHEAD_TASKS && !dp->stopping; i++) {
      cached *c = dp->buckets[bucket_of(dp, ahead[i].id)];
      while (c && memcmp(c->id, ahead[i].id, BLOB_ID_BYTES)) c = c->next_in_bucket;
      if (c) continue; /* cached, or being loaded */
      task *t = calloc(1, sizeof *t);
      if (!t) break;
      t->kind = T_LOAD;
      t->loc = ahead[i];
      queue_task(dp, t);
    }
    pthread_mutex_unlock(&dp->lock);
  }
  for (uint32_t i = 0; i < have; i++) release(dp, got[i], KEEP);
}

/* ---- ahead workers */

int data_push(data_path *dp, table *t, node *n) {
  /* A file the kernel does not know yet cannot be stored: its chunks are only loaded into the cache. */
  layout *l = n->nlookup ? NULL : data_layout(dp, t, n);
  if (!n->nlookup && (!l || l->problem)) return 1;
  uint32_t tasks = n->nlookup ? 1 : l->count;
  pthread_mutex_lock(&dp->lock);
  int room = dp->ntasks + tasks <= AHEAD_TASKS && !dp->stopping &&
             (n->nlookup || dp->ahead_bytes + dp->ahead_queued + n->attr.size <= AHEAD_CACHE_BYTES);
  for (uint32_t i = 0; room && i < tasks; i++) {
    task *k = calloc(1, sizeof *k);
    if (!k) break;
    k->kind = n->nlookup ? T_PUSH : T_LOAD;
    k->nodeid = n->nodeid;
    if (n->nlookup) k->bytes = n->attr.size;
    else {
      k->loc = l->chunks[i];
      k->bytes = l->chunks[i].raw_length;
      dp->ahead_queued += k->bytes;
    }
    queue_task(dp, k);
  }
  pthread_mutex_unlock(&dp->lock);
  return room;
}

static void push_file(data_path *dp, uint64_t nodeid) {
  strata_mount *m = dp->m;
  table_lock(m->table);
  node *n = table_get(m->table, nodeid);
  layout *l = n ? data_layout(dp, m->table, n) : NULL;
  uint32_t count = l && !l->problem ? l->count : 0;
  chunk_loc *locs = count ? malloc(count * sizeof *locs) : NULL;
  if (locs) memcpy(locs, l->chunks, count * sizeof *locs);
  table_unlock(m->table);
  if (!locs) return;
  struct fuse_bufvec *bufv = calloc(1, sizeof *bufv + count * sizeof(struct fuse_buf));
  cached **got = calloc(count, sizeof *got);
  uint32_t have = 0;
  size_t total = 0;
  const char *problem = NULL;
  for (; bufv && got && have < count; have++) {
    if (!(got[have] = get_chunk(dp, &locs[have], &problem))) break;
    bufv->buf[have].mem = got[have]->data;
    bufv->buf[have].size = got[have]->size;
    total += got[have]->size;
  }
  if (bufv && got && have == count) {
    bufv->count = count;
    if (fuse_lowlevel_notify_store(m->se, nodeid, 0, bufv, 0) == 0) {
      atomic_fetch_add_explicit(&m->counters[C_STORED_BYTES], total, memory_order_relaxed);
    }
  }
  for (uint32_t i = 0; i < have; i++) release(dp, got[i], DROP);
  free(got);
  free(bufv);
  free(locs);
}

static void *ahead_main(void *arg) {
  data_path *dp = arg;
  pthread_mutex_lock(&dp->lock);
  for (;;) {
    while (!dp->tasks && !dp->stopping) pthread_cond_wait(&dp->work, &dp->lock);
    if (dp->stopping) break;
    task *t = dp->tasks;
    dp->tasks = t->next;
    if (!dp->tasks) dp->tasks_tail = NULL;
    dp->ntasks--;
    pthread_mutex_unlock(&dp->lock);
    if (t->kind == T_PUSH) {
      push_file(dp, t->nodeid);
      table_lock(dp->m->table);
      dp->m->push_inflight -= t->bytes;
      table_unlock(dp->m->table);
    } else {
      const char *problem = NULL;
      cached *c = get_chunk(dp, &t->loc, &problem);
      if (c) release(dp, c, t->bytes ? KEEP_AHEAD : KEEP);
      if (t->bytes) {
        pthread_mutex_lock(&dp->lock);
        dp->ahead_queued -= t->bytes;
        pthread_mutex_unlock(&dp->lock);
      }
    }
    free(t);
    pthread_mutex_lock(&dp->lock);
  }
  pthread_mutex_unlock(&dp->lock);
  return NULL;
}

data_path *data_new(strata_mount *m, const blob_keys *keys, const char *pack_root, size_t cache_bytes) {
  data_path *dp = calloc(1, sizeof *dp);
  if (!dp) return NULL;
  dp->m = m;
  dp->keys = *keys;
  dp->pack_root = strdup(pack_root);
  dp->cache_limit = cache_bytes;
  dp->nbuckets = 4099;
  dp->buckets = calloc(dp->nbuckets, sizeof *dp->buckets);
  pthread_mutex_init(&dp->lock, NULL);
  pthread_cond_init(&dp->loaded, NULL);
  pthread_cond_init(&dp->work, NULL);
  if (!dp->pack_root || !dp->buckets) {
    data_free(dp);
    return NULL;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* signals belong to Node's main thread */
  for (; dp->nworkers < AHEAD_WORKERS; dp->nworkers++) {
    if (pthread_create(&dp->workers[dp->nworkers], NULL, ahead_main, dp)) break;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return dp;
}

void data_stop(data_path *dp) {
  pthread_mutex_lock(&dp->lock);
  dp->stopping = 1;
  pthread_cond_broadcast(&dp->work);
  pthread_mutex_unlock(&dp->lock);
  for (int i = 0; i < dp->nworkers; i++) pthread_join(dp->workers[i], NULL);
  dp->nworkers = 0;
}

void data_free(data_path *dp) {
  data_stop(dp);
  for (task *t = dp->tasks, *next; t; t = next) {
    next = t->next;
    free(t);
  }
  for (size_t b = 0; dp->buckets && b < dp->nbuckets; b++) {
    for (cached *c = dp->buckets[b], *next; c; c = next) {
      next = c->next_in_bucket;
      blob_free(c->data, c->size);
      free(c);
    }
  }
  for (uint32_t i = 0; i < dp->npacks; i++) if (dp->packs[i].fd >= 0) close(dp->packs[i].fd);
  free(dp->packs);
  free(dp->pack_slots);
  free(dp->buckets);
  free(dp->pack_root);
  pthread_mutex_destroy(&dp->lock);
  pthread_cond_destroy(&dp->loaded);
  pthread_cond_destroy(&dp->work);
  free(dp);
}
