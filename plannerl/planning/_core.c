/* plannerl._core: the innermost loops of plannerl's optimal planner, in C.
 *
 * A `Core` holds one STRIPS task in sparse form (fact lists per action, unit or 0/1 costs)
 * together with the object structure of its facts, so that it can:
 *
 *  - canonicalise a state under object symmetry: objects of the same symmetry class
 *    (interchangeable in the task) are ordered by colour refinement over the true facts,
 *    ties broken by individualisation; twins (objects whose facts mention no other
 *    interchangeable object) are ordered without further refinement. The result is always
 *    a state of the same orbit, so every distance is exact whatever the tie-breaks;
 *  - build a pattern database: all canonical states reachable from the initial state, then
 *    a backward 0-1 breadth-first search from the goal states over the reversed edges;
 *  - run A* over canonical states of a concrete task, with the sum of several pattern
 *    databases (each another Core plus a projection of concrete facts onto its facts) as
 *    heuristic, expanding every state with f <= C* and keeping all optimal predecessor
 *    edges, so the caller gets the whole graph of shortest plans over canonical states.
 *
 * States are bit sets of W 64-bit words. Everything is sized from the task; nothing here
 * knows about cooking.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t word;

#define INF_H 0x3fffffff
#define CACHE_LIMIT (1 << 20) /* raw abstract states whose value a database remembers */
#define SALT_FIXED 0x8f1bbcdcca62c1d6ULL
#define SALT_CLASS 0x5a827999ed9eba14ULL
#define SALT_IND 0x6ed9eba1a3b1c2d4ULL
#define SALT_TWIN 0x9e3779b97f4a7c15ULL

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t hash_words(const word *s, int W) {
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (int i = 0; i < W; i++) h = mix64(h ^ s[i]) + (uint64_t)i;
    return h;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ growable int vector */

typedef struct {
    int32_t *data;
    size_t len, cap;
} IVec;

static int ivec_push(IVec *v, int32_t x) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *data = realloc(v->data, cap * sizeof(int32_t));
        if (!data) return -1;
        v->data = data;
        v->cap = cap;
    }
    v->data[v->len++] = x;
    return 0;
}

static void ivec_free(IVec *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

/* ------------------------------------------------------------------ state set */

/* An arena of states (W words each) and an open-addressing table of their ids. */
typedef struct {
    int W;
    word *arena;
    size_t n, cap;
    int32_t *table;
    size_t tmask;
} StateSet;

static int stateset_init(StateSet *s, int W) {
    s->W = W;
    s->n = 0;
    s->cap = 1024;
    s->arena = malloc(s->cap * W * sizeof(word));
    s->tmask = 4095;
    s->table = malloc((s->tmask + 1) * sizeof(int32_t));
    if (!s->arena || !s->table) return -1;
    memset(s->table, 0xff, (s->tmask + 1) * sizeof(int32_t));
    return 0;
}

static void stateset_free(StateSet *s) {
    free(s->arena);
    free(s->table);
    s->arena = NULL;
    s->table = NULL;
    s->n = 0;
}

static inline const word *stateset_get(const StateSet *s, int32_t id) { return s->arena + (size_t)id * s->W; }

static int32_t stateset_find(const StateSet *s, const word *x) {
    size_t i = hash_words(x, s->W) & s->tmask;
    for (;;) {
        int32_t id = s->table[i];
        if (id < 0) return -1;
        if (memcmp(stateset_get(s, id), x, s->W * sizeof(word)) == 0) return id;
        i = (i + 1) & s->tmask;
    }
}

static int stateset_grow_table(StateSet *s) {
    size_t size = (s->tmask + 1) * 2;
    int32_t *table = malloc(size * sizeof(int32_t));
    if (!table) return -1;
    memset(table, 0xff, size * sizeof(int32_t));
    size_t mask = size - 1;
    for (size_t id = 0; id < s->n; id++) {
        size_t i = hash_words(stateset_get(s, (int32_t)id), s->W) & mask;
        while (table[i] >= 0) i = (i + 1) & mask;
        table[i] = (int32_t)id;
    }
    free(s->table);
    s->table = table;
    s->tmask = mask;
    return 0;
}

/* Returns the id of x, inserting it when new (*is_new set); -1 when out of memory. */
static int32_t stateset_insert(StateSet *s, const word *x, int *is_new) {
    size_t i = hash_words(x, s->W) & s->tmask;
    for (;;) {
        int32_t id = s->table[i];
        if (id < 0) break;
        if (memcmp(stateset_get(s, id), x, s->W * sizeof(word)) == 0) {
            *is_new = 0;
            return id;
        }
        i = (i + 1) & s->tmask;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        word *arena = realloc(s->arena, cap * s->W * sizeof(word));
        if (!arena) return -1;
        s->arena = arena;
        s->cap = cap;
    }
    int32_t id = (int32_t)s->n++;
    memcpy(s->arena + (size_t)id * s->W, x, s->W * sizeof(word));
    s->table[i] = id;
    *is_new = 1;
    if (s->n * 2 > s->tmask + 1 && stateset_grow_table(s) < 0) return -1;
    return id;
}

/* ------------------------------------------------------------------ the task */

typedef struct {
    PyObject_HEAD
    int nfacts, W, nactions, nobj, nclass;
    int32_t *pre_off, *pre, *neg_off, *neg, *add_off, *add, *del_off, *del, *cost;
    int32_t *goal_pos, ngoal_pos, *goal_neg, ngoal_neg;
    word *init;
    /* successor index: actions filed under one precondition fact; slot nfacts holds the rest */
    int32_t *bucket_off, *bucket;
    /* object structure of facts, for symmetry */
    int32_t *fact_pred, *fact_args_off, *fact_args, *obj_class;
    int32_t *class_off, *class_members, *class_fill; /* members of each class, ascending; a workspace */
    int32_t *fact_table;                /* open addressing: (pred, args) -> fact */
    size_t fact_tmask;
    int32_t *fact_sym; /* 1 when a fact mentions an interchangeable object */
    /* canonicalisation workspace */
    uint64_t *col, *newcol, *col0; /* col0: every object's colour before refinement */
    int32_t *order, *inc_off, *inc, *inc_fill, *perm, *true_facts, *sym_objs, *lonely, *twin_rank;
    int nsym;
    /* interchangeable objects among each action's arguments (for twin pruning) */
    int32_t *act_sym_off, *act_sym;
    /* every object id each action names, in argument order (-1: not an object of the task) */
    int32_t *act_obj_off, *act_objs;
    word *scratch;
    /* pattern database over canonical states */
    StateSet pdb;
    int32_t *pdb_h;
    int pdb_ready;
    /* cache: raw (non-canonical) state -> h */
    StateSet cache;
    int32_t *cache_h;
    size_t cache_cap;
} Core;

static uint64_t fact_key_hash(int32_t pred, const int32_t *args, int n) {
    uint64_t h = mix64((uint64_t)pred + 0x1234567ULL);
    for (int i = 0; i < n; i++) h = mix64(h ^ ((uint64_t)(uint32_t)args[i] + ((uint64_t)i << 40)));
    return h;
}

static int32_t fact_lookup(const Core *c, int32_t pred, const int32_t *args, int n) {
    size_t i = fact_key_hash(pred, args, n) & c->fact_tmask;
    for (;;) {
        int32_t f = c->fact_table[i];
        if (f < 0) return -1;
        int m = c->fact_args_off[f + 1] - c->fact_args_off[f];
        if (c->fact_pred[f] == pred && m == n && memcmp(c->fact_args + c->fact_args_off[f], args, n * sizeof(int32_t)) == 0)
            return f;
        i = (i + 1) & c->fact_tmask;
    }
}

static inline int has_bit(const word *s, int k) { return (s[k >> 6] >> (k & 63)) & 1; }
static inline void set_bit(word *s, int k) { s[k >> 6] |= (word)1 << (k & 63); }
static inline void clear_bit(word *s, int k) { s[k >> 6] &= ~((word)1 << (k & 63)); }

static inline int applicable(const Core *c, const word *s, int a) {
    for (int32_t i = c->pre_off[a]; i < c->pre_off[a + 1]; i++)
        if (!has_bit(s, c->pre[i])) return 0;
    for (int32_t i = c->neg_off[a]; i < c->neg_off[a + 1]; i++)
        if (has_bit(s, c->neg[i])) return 0;
    return 1;
}

static inline void apply_action(const Core *c, const word *s, int a, word *out) {
    memcpy(out, s, c->W * sizeof(word));
    for (int32_t i = c->del_off[a]; i < c->del_off[a + 1]; i++) clear_bit(out, c->del[i]);
    for (int32_t i = c->add_off[a]; i < c->add_off[a + 1]; i++) set_bit(out, c->add[i]);
}

static inline int is_goal(const Core *c, const word *s) {
    for (int i = 0; i < c->ngoal_pos; i++)
        if (!has_bit(s, c->goal_pos[i])) return 0;
    for (int i = 0; i < c->ngoal_neg; i++)
        if (has_bit(s, c->goal_neg[i])) return 0;
    return 1;
}

/* Applicable actions of s, ascending, into out (capacity nactions); returns the count. */
static int applicable_actions(const Core *c, const word *s, int32_t *out) {
    int n = 0;
    for (int32_t i = c->bucket_off[c->nfacts]; i < c->bucket_off[c->nfacts + 1]; i++)
        if (applicable(c, s, c->bucket[i])) out[n++] = c->bucket[i];
    for (int w = 0; w < c->W; w++) {
        word bits = s[w];
        while (bits) {
            int k = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
            for (int32_t i = c->bucket_off[k]; i < c->bucket_off[k + 1]; i++)
                if (applicable(c, s, c->bucket[i])) out[n++] = c->bucket[i];
        }
    }
    /* insertion sort: the lists are short and nearly sorted per bucket */
    for (int i = 1; i < n; i++) {
        int32_t x = out[i];
        int j = i - 1;
        while (j >= 0 && out[j] > x) {
            out[j + 1] = out[j];
            j--;
        }
        out[j + 1] = x;
    }
    return n;
}

/* ------------------------------------------------------------------ canonicalisation */

/* Sort ids ascending by (key[id], id): a heapsort, so no global comparison context is needed. */
static inline int key_less(const uint64_t *key, int32_t a, int32_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); }

static void sift_down(int32_t *arr, int start, int end, const uint64_t *key) {
    int root = start;
    while (2 * root + 1 < end) {
        int child = 2 * root + 1;
        if (child + 1 < end && key_less(key, arr[child], arr[child + 1])) child++;
        if (!key_less(key, arr[root], arr[child])) return;
        int32_t t = arr[root];
        arr[root] = arr[child];
        arr[child] = t;
        root = child;
    }
}

static void sort_by_key(int32_t *arr, int n, const uint64_t *key) {
    if (n < 64) {
        for (int i = 1; i < n; i++) {
            int32_t x = arr[i];
            int j = i - 1;
            while (j >= 0 && key_less(key, x, arr[j])) {
                arr[j + 1] = arr[j];
                j--;
            }
            arr[j + 1] = x;
        }
        return;
    }
    for (int start = n / 2 - 1; start >= 0; start--) sift_down(arr, start, n, key);
    for (int end = n - 1; end > 0; end--) {
        int32_t t = arr[0];
        arr[0] = arr[end];
        arr[end] = t;
        sift_down(arr, 0, end, key);
    }
}

/* Number of distinct colours among the interchangeable objects (a small open-addressing set). */
static int count_colours(Core *c, int nsym) {
    size_t size = 16;
    while (size < (size_t)nsym * 2) size *= 2;
    uint64_t *set = c->newcol + c->nobj; /* 4 * nobj + 64 slots follow the colours */
    memset(set, 0, size * sizeof(uint64_t));
    int distinct = 0;
    for (int i = 0; i < nsym; i++) {
        uint64_t x = c->col[c->sym_objs[i]] | 1; /* 0 marks an empty slot */
        size_t j = mix64(x) & (size - 1);
        while (set[j] && set[j] != x) j = (j + 1) & (size - 1);
        if (!set[j]) {
            set[j] = x;
            distinct++;
        }
    }
    return distinct;
}

/* One refinement round over the interchangeable objects; returns the number of distinct colours. */
static int refine_round(Core *c, int nsym) {
    for (int i = 0; i < nsym; i++) {
        int o = c->sym_objs[i];
        uint64_t sig = 0;
        for (int32_t j = c->inc_off[o]; j < c->inc_off[o + 1]; j++) {
            int32_t f = c->inc[2 * j], pos = c->inc[2 * j + 1];
            uint64_t h = mix64((uint64_t)c->fact_pred[f] * 0x100000001b3ULL + (uint64_t)pos);
            const int32_t *args = c->fact_args + c->fact_args_off[f];
            int n = c->fact_args_off[f + 1] - c->fact_args_off[f];
            for (int p = 0; p < n; p++) h = mix64(h ^ (p == pos ? 0x51ed270b9e3779b9ULL : c->col[args[p]]) ^ (uint64_t)p);
            sig += h;
        }
        c->newcol[o] = mix64(c->col[o] ^ mix64(sig + 0x2545f4914f6cdd1dULL));
    }
    for (int i = 0; i < nsym; i++) c->col[c->sym_objs[i]] = c->newcol[c->sym_objs[i]];
    return count_colours(c, nsym);
}

static int refine(Core *c, int nsym) {
    int before = -1, now = refine_round(c, nsym);
    for (int round = 0; now != before && round <= nsym; round++) {
        before = now;
        now = refine_round(c, nsym);
    }
    return now;
}

/* c->order = the interchangeable objects sorted by (colour, id). */
static void order_by_colour(Core *c, int nsym) {
    for (int i = 0; i < nsym; i++) c->order[i] = c->sym_objs[i];
    sort_by_key(c->order, nsym, c->col);
}

/* Fill the incidence lists of the interchangeable objects in the true facts of s and copy the
   facts without interchangeable objects to out; returns the number of true facts with two or
   more interchangeable objects (0: one refinement round is enough). lonely[o] is set when no
   fact of o names another interchangeable object. */
static int incidences(Core *c, const word *s, word *out, int *ntrue_out) {
    int ntrue = 0, linked = 0;
    for (int w = 0; w < c->W; w++) {
        word bits = s[w];
        while (bits) {
            c->true_facts[ntrue++] = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
        }
    }
    *ntrue_out = ntrue;
    memset(out, 0, c->W * sizeof(word));
    for (int o = 0; o <= c->nobj; o++) c->inc_off[o] = 0;
    for (int o = 0; o < c->nobj; o++) c->lonely[o] = 1;
    for (int t = 0; t < ntrue; t++) {
        int f = c->true_facts[t];
        if (!c->fact_sym[f]) {
            set_bit(out, f);
            continue;
        }
        int count = 0;
        for (int32_t j = c->fact_args_off[f]; j < c->fact_args_off[f + 1]; j++)
            if (c->obj_class[c->fact_args[j]] >= 0) {
                c->inc_off[c->fact_args[j] + 1]++;
                count++;
            }
        if (count > 1) {
            linked++;
            for (int32_t j = c->fact_args_off[f]; j < c->fact_args_off[f + 1]; j++)
                if (c->obj_class[c->fact_args[j]] >= 0) c->lonely[c->fact_args[j]] = 0;
        }
    }
    for (int o = 0; o < c->nobj; o++) c->inc_off[o + 1] += c->inc_off[o];
    for (int o = 0; o < c->nobj; o++) c->inc_fill[o] = c->inc_off[o];
    for (int t = 0; t < ntrue; t++) {
        int f = c->true_facts[t];
        if (!c->fact_sym[f]) continue;
        for (int32_t j = c->fact_args_off[f]; j < c->fact_args_off[f + 1]; j++) {
            int o = c->fact_args[j];
            if (c->obj_class[o] >= 0) {
                int32_t k = c->inc_fill[o]++;
                c->inc[2 * k] = f;
                c->inc[2 * k + 1] = j - c->fact_args_off[f];
            }
        }
    }
    return linked;
}

/* Canonical form of s into out; perm[o] = the object o is renamed to.
 *
 * Colours start as the symmetry class and are refined by the true facts around each object
 * (a multiset hash of predicate, position and the other arguments' colours) until stable.
 * Then, in the order of the colours: a cell of lonely objects is a cell of twins (same facts,
 * naming no other interchangeable object), so any order of them gives the same state and they
 * get distinct colours in id order at once; another cell gets its lowest-id object
 * individualised and the colours refined again. */
static void canonicalise(Core *c, const word *s, word *out, int32_t *perm) {
    for (int o = 0; o < c->nobj; o++) perm[o] = o;
    if (c->nclass == 0) {
        memcpy(out, s, c->W * sizeof(word));
        return;
    }
    int ntrue;
    int linked = incidences(c, s, out, &ntrue);
    int nsym = c->nsym;
    memcpy(c->col, c->col0, c->nobj * sizeof(uint64_t));
    int distinct = linked ? refine(c, nsym) : refine_round(c, nsym);
    for (int guard = 0; distinct < nsym && guard <= nsym; guard++) {
        order_by_colour(c, nsym);
        int individualised = 0;
        for (int i = 0; i < nsym && !individualised;) {
            int j = i + 1;
            while (j < nsym && c->col[c->order[j]] == c->col[c->order[i]]) j++;
            if (j - i > 1) {
                int twins = 1;
                for (int k = i; k < j; k++) twins &= c->lonely[c->order[k]];
                if (twins) {
                    for (int k = i; k < j; k++) c->col[c->order[k]] = mix64(c->col[c->order[k]] ^ (SALT_TWIN + (uint64_t)(k - i)));
                } else {
                    c->col[c->order[i]] = mix64(c->col[c->order[i]] ^ SALT_IND);
                    individualised = 1;
                }
            }
            i = j;
        }
        if (!individualised) break;
        distinct = refine(c, nsym);
    }
    /* within each class, the k-th object by (colour, id) becomes the class's k-th member */
    order_by_colour(c, nsym);
    memcpy(c->class_fill, c->class_off, c->nclass * sizeof(int32_t));
    for (int i = 0; i < nsym; i++) {
        int o = c->order[i];
        perm[o] = c->class_members[c->class_fill[c->obj_class[o]]++];
    }
    int32_t args[16];
    for (int t = 0; t < ntrue; t++) {
        int f = c->true_facts[t];
        if (!c->fact_sym[f]) continue;
        int n = c->fact_args_off[f + 1] - c->fact_args_off[f];
        for (int p = 0; p < n; p++) args[p] = perm[c->fact_args[c->fact_args_off[f] + p]];
        int32_t g = fact_lookup(c, c->fact_pred[f], args, n);
        set_bit(out, g >= 0 ? g : f); /* g < 0 cannot happen for a true symmetry */
    }
}

/* Keep, of the applicable actions acts[0..n) of a canonical state s, one per class of actions
 * that differ only by twin objects (their successors are the same canonical state at the same
 * cost): an action may use a twin only if it uses that twin cell's lowest members. Twins are
 * lonely objects of one class with the same colour after one refinement round. Returns the
 * new count. */
static int prune_twin_actions(Core *c, const word *s, int32_t *acts, int n) {
    if (c->nclass == 0) return n;
    int ntrue;
    word *tmp = c->scratch + 3 * c->W;
    incidences(c, s, tmp, &ntrue);
    memcpy(c->col, c->col0, c->nobj * sizeof(uint64_t));
    refine_round(c, c->nsym);
    order_by_colour(c, c->nsym);
    /* rank of each lonely object within its twin cell (order is sorted by colour, then id) */
    for (int o = 0; o < c->nobj; o++) c->twin_rank[o] = -1;
    for (int i = 0; i < c->nsym;) {
        int j = i + 1;
        while (j < c->nsym && c->col[c->order[j]] == c->col[c->order[i]]) j++;
        if (j - i > 1) {
            int r = 0;
            for (int k = i; k < j; k++)
                if (c->lonely[c->order[k]]) c->twin_rank[c->order[k]] = r++;
        }
        i = j;
    }
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int a = acts[i], ok = 1, used = 0, maxrank = -1;
        for (int32_t j = c->act_sym_off[a]; j < c->act_sym_off[a + 1]; j++) {
            int r = c->twin_rank[c->act_sym[j]];
            if (r >= 0) {
                used++;
                if (r > maxrank) maxrank = r;
            }
        }
        if (used && maxrank >= used) ok = 0; /* with several twins this keeps a superset: still exact */
        if (ok) acts[kept++] = a;
    }
    return kept;
}

/* ------------------------------------------------------------------ construction */

static void core_dealloc(Core *c) {
    free(c->pre_off); free(c->pre); free(c->neg_off); free(c->neg); free(c->add_off); free(c->add);
    free(c->del_off); free(c->del); free(c->cost); free(c->goal_pos); free(c->goal_neg); free(c->init);
    free(c->bucket_off); free(c->bucket); free(c->fact_pred); free(c->fact_args_off); free(c->fact_args);
    free(c->obj_class); free(c->class_off); free(c->class_members); free(c->class_fill); free(c->fact_table); free(c->fact_sym);
    free(c->col); free(c->newcol); free(c->col0); free(c->order); free(c->inc_off); free(c->inc);
    free(c->inc_fill); free(c->perm); free(c->true_facts); free(c->sym_objs); free(c->scratch);
    free(c->lonely); free(c->twin_rank); free(c->act_sym_off); free(c->act_sym); free(c->act_obj_off); free(c->act_objs);
    stateset_free(&c->pdb);
    free(c->pdb_h);
    stateset_free(&c->cache);
    free(c->cache_h);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int32_t *copy_ints(Py_buffer *b, Py_ssize_t *n) {
    *n = b->len / (Py_ssize_t)sizeof(int32_t);
    int32_t *out = malloc((*n + 1) * sizeof(int32_t));
    if (out && *n) memcpy(out, b->buf, *n * sizeof(int32_t));
    return out;
}

/* Sparse fact lists (offsets, indices) from nactions masks of W words each. */
static int masks_to_lists(const word *masks, int nactions, int W, int32_t **off, int32_t **idx) {
    size_t total = 0;
    for (size_t i = 0; i < (size_t)nactions * W; i++) total += __builtin_popcountll(masks[i]);
    *off = malloc((nactions + 1) * sizeof(int32_t));
    *idx = malloc((total + 1) * sizeof(int32_t));
    if (!*off || !*idx) return -1;
    size_t n = 0;
    for (int a = 0; a < nactions; a++) {
        (*off)[a] = (int32_t)n;
        for (int w = 0; w < W; w++) {
            word bits = masks[(size_t)a * W + w];
            while (bits) {
                (*idx)[n++] = w * 64 + __builtin_ctzll(bits);
                bits &= bits - 1;
            }
        }
    }
    (*off)[nactions] = (int32_t)n;
    return 0;
}

static int32_t *mask_to_list(const word *mask, int W, int32_t *count) {
    int32_t *out = malloc((W * 64 + 1) * sizeof(int32_t));
    int n = 0;
    for (int w = 0; out && w < W; w++) {
        word bits = mask[w];
        while (bits) {
            out[n++] = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
        }
    }
    *count = n;
    return out;
}

/* Finish a Core whose action lists, costs, goal lists, fact structure and classes are set:
   successor index, class members, fact table and workspaces. `weight` (per fact) and the
   action objects are consumed. Returns -1 with a Python error set. */
static int core_finish(Core *c, int32_t *weight, int32_t *obj_off, int32_t *objs) {
    int nfacts = c->nfacts;
    /* keep only interchangeable objects */
    c->act_sym_off = malloc((c->nactions + 1) * sizeof(int32_t));
    c->act_sym = malloc((obj_off[c->nactions] + 1) * sizeof(int32_t));
    if (!c->act_sym_off || !c->act_sym) {
        free(weight);
        free(obj_off);
        free(objs);
        PyErr_NoMemory();
        return -1;
    }
    int m = 0;
    for (int a = 0; a < c->nactions; a++) {
        c->act_sym_off[a] = m;
        for (int32_t j = obj_off[a]; j < obj_off[a + 1]; j++)
            if (objs[j] >= 0 && objs[j] < c->nobj && c->obj_class[objs[j]] >= 0) c->act_sym[m++] = objs[j];
    }
    c->act_sym_off[c->nactions] = m;
    c->act_obj_off = obj_off;
    c->act_objs = objs;
    /* successor buckets */
    int32_t *bucket_key = malloc((c->nactions + 1) * sizeof(int32_t));
    c->bucket_off = calloc(nfacts + 2, sizeof(int32_t));
    c->bucket = malloc((c->nactions + 1) * sizeof(int32_t));
    int32_t *fill = malloc((nfacts + 2) * sizeof(int32_t));
    if (!bucket_key || !c->bucket_off || !c->bucket || !fill) {
        free(weight);
        free(bucket_key);
        free(fill);
        PyErr_NoMemory();
        return -1;
    }
    for (int a = 0; a < c->nactions; a++) {
        int32_t key = nfacts;
        for (int32_t i = c->pre_off[a]; i < c->pre_off[a + 1]; i++) {
            int32_t k = c->pre[i];
            if (key == nfacts || weight[k] < weight[key] || (weight[k] == weight[key] && k < key)) key = k;
        }
        bucket_key[a] = key;
        c->bucket_off[key + 1]++;
    }
    free(weight);
    for (int k = 0; k <= nfacts; k++) c->bucket_off[k + 1] += c->bucket_off[k];
    memcpy(fill, c->bucket_off, (nfacts + 1) * sizeof(int32_t));
    for (int a = 0; a < c->nactions; a++) c->bucket[fill[bucket_key[a]]++] = a;
    free(fill);
    free(bucket_key);
    /* symmetry classes */
    int nclass = 0;
    for (int o = 0; o < c->nobj; o++)
        if (c->obj_class[o] + 1 > nclass) nclass = c->obj_class[o] + 1;
    c->nclass = nclass;
    c->class_off = calloc(nclass + 2, sizeof(int32_t));
    c->class_members = malloc((c->nobj + 1) * sizeof(int32_t));
    c->sym_objs = malloc((c->nobj + 1) * sizeof(int32_t));
    c->nsym = 0;
    for (int o = 0; o < c->nobj; o++)
        if (c->obj_class[o] >= 0) {
            c->class_off[c->obj_class[o] + 1]++;
            c->sym_objs[c->nsym++] = o;
        }
    for (int k = 0; k < nclass; k++) c->class_off[k + 1] += c->class_off[k];
    fill = malloc((nclass + 1) * sizeof(int32_t));
    memcpy(fill, c->class_off, (nclass + 1) * sizeof(int32_t));
    for (int o = 0; o < c->nobj; o++)
        if (c->obj_class[o] >= 0) c->class_members[fill[c->obj_class[o]]++] = o;
    free(fill);
    /* fact table and which facts mention interchangeable objects */
    size_t size = 16;
    while (size < (size_t)nfacts * 2 + 2) size *= 2;
    c->fact_tmask = size - 1;
    c->fact_table = malloc(size * sizeof(int32_t));
    memset(c->fact_table, 0xff, size * sizeof(int32_t));
    c->fact_sym = calloc(nfacts + 1, sizeof(int32_t));
    int maxinc = 0;
    for (int f = 0; f < nfacts; f++) {
        int m = c->fact_args_off[f + 1] - c->fact_args_off[f];
        if (m > 16) {
            PyErr_SetString(PyExc_ValueError, "facts with more than 16 arguments are not supported");
            return -1;
        }
        size_t i = fact_key_hash(c->fact_pred[f], c->fact_args + c->fact_args_off[f], m) & c->fact_tmask;
        while (c->fact_table[i] >= 0) i = (i + 1) & c->fact_tmask;
        c->fact_table[i] = f;
        for (int32_t j = c->fact_args_off[f]; j < c->fact_args_off[f + 1]; j++)
            if (c->obj_class[c->fact_args[j]] >= 0) {
                c->fact_sym[f] = 1;
                maxinc++;
            }
    }
    c->col = malloc((c->nobj + 1) * sizeof(uint64_t));
    c->newcol = malloc((5 * (size_t)c->nobj + 64) * sizeof(uint64_t));
    c->col0 = malloc((c->nobj + 1) * sizeof(uint64_t));
    c->class_fill = malloc((nclass + 1) * sizeof(int32_t));
    for (int o = 0; c->col0 && o < c->nobj; o++)
        c->col0[o] = c->obj_class[o] >= 0 ? mix64((uint64_t)c->obj_class[o] ^ SALT_CLASS) : mix64((uint64_t)o ^ SALT_FIXED);
    c->order = malloc((c->nobj + 1) * sizeof(int32_t));
    c->inc_off = malloc((c->nobj + 2) * sizeof(int32_t));
    c->inc_fill = malloc((c->nobj + 1) * sizeof(int32_t));
    c->inc = malloc((2 * (size_t)maxinc + 2) * sizeof(int32_t));
    c->perm = malloc((c->nobj + 1) * sizeof(int32_t));
    c->true_facts = malloc((nfacts + 1) * sizeof(int32_t));
    c->lonely = malloc((c->nobj + 1) * sizeof(int32_t));
    c->twin_rank = malloc((c->nobj + 1) * sizeof(int32_t));
    c->scratch = malloc(4 * c->W * sizeof(word));
    if (stateset_init(&c->pdb, c->W) < 0 || stateset_init(&c->cache, c->W) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    c->cache_cap = 1024;
    c->cache_h = malloc(c->cache_cap * sizeof(int32_t));
    c->pdb_h = NULL;
    c->pdb_ready = 0;
    if (!c->bucket_off || !c->bucket || !c->class_off || !c->class_members || !c->fact_table || !c->fact_sym || !c->col ||
        !c->newcol || !c->order || !c->inc_off || !c->inc || !c->perm || !c->true_facts || !c->scratch || !c->cache_h ||
        !c->col0 || !c->class_fill) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Core(nfacts, init, pre, neg, add, delete, cost, goal_pos, goal_neg, fact_weight, fact_pred,
        fact_args_off, fact_args, obj_class, action_objects_off, action_objects). States and
   masks are little-endian bit sets of W = nfacts // 64 + 1 words; pre/neg/add/delete hold one
   mask per action, concatenated; the rest are int32 buffers (action_objects: the objects each
   action names, for twin pruning). An action is filed in the successor index under its
   precondition fact of least weight (the estimated chance that the fact holds). */
static int core_init(Core *c, PyObject *args, PyObject *kwds) {
    int nfacts;
    Py_buffer b[15];
    if (!PyArg_ParseTuple(args, "iy*y*y*y*y*y*y*y*y*y*y*y*y*y*y*", &nfacts, &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6],
                          &b[7], &b[8], &b[9], &b[10], &b[11], &b[12], &b[13], &b[14]))
        return -1;
    int W = nfacts / 64 + 1;
    c->nfacts = nfacts;
    c->W = W;
    Py_ssize_t n;
    int32_t *cost = copy_ints(&b[5], &n);
    c->nactions = (int)n;
    int ok = cost != NULL && b[0].len >= (Py_ssize_t)(W * 8);
    for (int i = 1; i <= 4; i++) ok = ok && b[i].len == (Py_ssize_t)((size_t)c->nactions * W * 8);
    ok = ok && b[6].len == W * 8 && b[7].len == W * 8 && b[13].len == (Py_ssize_t)((c->nactions + 1) * sizeof(int32_t));
    if (!ok) {
        for (int i = 0; i < 15; i++) PyBuffer_Release(&b[i]);
        free(cost);
        PyErr_SetString(PyExc_ValueError, "Core: inconsistent buffer sizes");
        return -1;
    }
    c->cost = cost;
    c->init = calloc(W, sizeof(word));
    if (c->init) memcpy(c->init, b[0].buf, W * 8);
    int failed = masks_to_lists(b[1].buf, c->nactions, W, &c->pre_off, &c->pre) < 0 ||
                 masks_to_lists(b[2].buf, c->nactions, W, &c->neg_off, &c->neg) < 0 ||
                 masks_to_lists(b[3].buf, c->nactions, W, &c->add_off, &c->add) < 0 ||
                 masks_to_lists(b[4].buf, c->nactions, W, &c->del_off, &c->del) < 0;
    c->goal_pos = mask_to_list(b[6].buf, W, &c->ngoal_pos);
    c->goal_neg = mask_to_list(b[7].buf, W, &c->ngoal_neg);
    int32_t *weight = copy_ints(&b[8], &n);
    c->fact_pred = copy_ints(&b[9], &n);
    c->fact_args_off = copy_ints(&b[10], &n);
    c->fact_args = copy_ints(&b[11], &n);
    c->obj_class = copy_ints(&b[12], &n);
    c->nobj = (int)n;
    int32_t *obj_off = copy_ints(&b[13], &n), *objs = copy_ints(&b[14], &n);
    for (int i = 0; i < 15; i++) PyBuffer_Release(&b[i]);
    if (failed || !c->init || !c->goal_pos || !c->goal_neg || !weight || !c->fact_pred || !c->fact_args_off ||
        !c->fact_args || !c->obj_class || !obj_off || !objs) {
        free(weight);
        free(obj_off);
        free(objs);
        PyErr_NoMemory();
        return -1;
    }
    return core_finish(c, weight, obj_off, objs);
}

/* ------------------------------------------------------------------ projection onto a pattern */

typedef struct {
    int32_t *data;
    size_t len, cap;
    int32_t *table; /* open addressing over key offsets */
    size_t tmask, nkeys;
} KeySet;

static uint64_t hash_ints(const int32_t *x, int n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < n; i++) h = mix64(h ^ (uint64_t)(uint32_t)x[i]) + (uint64_t)i;
    return h;
}

/* Insert key (n ints, its first int being n) unless present; returns 1 when inserted, 0 when
   present, -1 out of memory. */
static int keyset_add(KeySet *k, const int32_t *key, int n) {
    if (!k->table) {
        k->tmask = 1023;
        k->table = malloc((k->tmask + 1) * sizeof(int32_t));
        if (!k->table) return -1;
        memset(k->table, 0xff, (k->tmask + 1) * sizeof(int32_t));
    }
    size_t i = hash_ints(key, n) & k->tmask;
    for (;;) {
        int32_t off = k->table[i];
        if (off < 0) break;
        if (k->data[off] == n && memcmp(k->data + off, key, n * sizeof(int32_t)) == 0) return 0;
        i = (i + 1) & k->tmask;
    }
    while (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4096;
        int32_t *data = realloc(k->data, cap * sizeof(int32_t));
        if (!data) return -1;
        k->data = data;
        k->cap = cap;
    }
    k->table[i] = (int32_t)k->len;
    memcpy(k->data + k->len, key, n * sizeof(int32_t));
    k->len += n;
    if (++k->nkeys * 2 > k->tmask + 1) {
        size_t size = (k->tmask + 1) * 2;
        int32_t *table = malloc(size * sizeof(int32_t));
        if (!table) return -1;
        memset(table, 0xff, size * sizeof(int32_t));
        for (size_t off = 0; off < k->len; off += k->data[off]) {
            size_t j = hash_ints(k->data + off, k->data[off]) & (size - 1);
            while (table[j] >= 0) j = (j + 1) & (size - 1);
            table[j] = (int32_t)off;
        }
        free(k->table);
        k->table = table;
        k->tmask = size - 1;
    }
    return 1;
}

static int contains(const int32_t *x, int n, int32_t v) {
    for (int i = 0; i < n; i++)
        if (x[i] == v) return 1;
    return 0;
}

static void sort_unique(int32_t *x, int *n) {
    for (int i = 1; i < *n; i++) {
        int32_t v = x[i];
        int j = i - 1;
        while (j >= 0 && x[j] > v) {
            x[j + 1] = x[j];
            j--;
        }
        x[j + 1] = v;
    }
    int m = 0;
    for (int i = 0; i < *n; i++)
        if (m == 0 || x[m - 1] != x[i]) x[m++] = x[i];
    *n = m;
}

/* Two different facts of one mutex group can never hold together. */
static int conflicting(const int32_t *goff, const int32_t *gids, int32_t a, int32_t b) {
    if (a == b) return 0;
    for (int32_t i = goff[a]; i < goff[a + 1]; i++)
        for (int32_t j = goff[b]; j < goff[b + 1]; j++)
            if (gids[i] == gids[j]) return 1;
    return 0;
}

/* project(p, fact_map, member_count, fact_group_off, fact_groups, owner_of, guard_off,
           guard_fact_off, guard_facts, guard_owner, nabs, init, goal, fact_weight, fact_pred,
           fact_args_off, fact_args, obj_class) -> Core

   The abstract task of pattern p: every action, in each case of its cost rule that p can tell
   apart (plannerl.heuristics._variants explains the rule), projected through fact_map
   (concrete fact -> abstract fact, -1 outside the pattern; several facts may share one
   abstract fact). A negative condition on an abstract fact is kept only when it excludes all of
   its members; a delete only when the deleted member is required or all members go. Cases
   that contradict the action's own preconditions (two facts of one mutex group) are dropped,
   and so are duplicates, actions without effect on the pattern and actions whose owner_of is
   -3 (their own preconditions are mutex, so they never apply). */
static PyObject *core_project(Core *c, PyObject *args) {
    int p, nabs;
    Py_buffer b[16];
    if (!PyArg_ParseTuple(args, "iy*y*y*y*y*y*y*y*y*iy*y*y*y*y*y*y*", &p, &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7],
                          &b[8], &nabs, &b[9], &b[10], &b[11], &b[12], &b[13], &b[14], &b[15]))
        return NULL;
    const int32_t *fmap = b[0].buf, *members = b[1].buf, *goff = b[2].buf, *gids = b[3].buf, *owner_of = b[4].buf;
    const int32_t *guard_off = b[5].buf, *gf_off = b[6].buf, *gfacts = b[7].buf, *gowner = b[8].buf;
    int Wa = nabs / 64 + 1;
    IVec pre_off = {0}, pre = {0}, neg_off = {0}, neg = {0}, add_off = {0}, add = {0}, del_off = {0}, del = {0}, cost = {0};
    IVec obj_off = {0}, objs = {0};
    KeySet keys = {0};
    int32_t xneg[256], cpre[256], cneg[512], apre[256], aneg[256], aadd[256], adel[256], key[1100];
    int failed = 0;
    ivec_push(&pre_off, 0); ivec_push(&neg_off, 0); ivec_push(&add_off, 0); ivec_push(&del_off, 0); ivec_push(&obj_off, 0);
    for (int a = 0; a < c->nactions && !failed; a++) {
        if (owner_of[a] == -3) continue; /* never applicable: two preconditions are mutex */
        int touches = 0;
        for (int32_t i = c->add_off[a]; i < c->add_off[a + 1] && !touches; i++) touches = fmap[c->add[i]] >= 0;
        for (int32_t i = c->del_off[a]; i < c->del_off[a + 1] && !touches; i++) touches = fmap[c->del[i]] >= 0;
        if (!touches) continue;
        /* the cases: (extra pre fact or -1, extra neg facts, cost) */
        int ncases = 0;
        int32_t case_pre[64], case_cost[64], case_neg_off[65], case_neg[4096];
        int nneg = 0;
        case_neg_off[0] = 0;
        if (owner_of[a] >= 0 || owner_of[a] == -2) {
            case_pre[0] = -1;
            case_cost[0] = owner_of[a] == p ? 1 : 0;
            case_neg_off[1] = 0;
            ncases = 1;
        } else {
            int nnull = 0, stopped = 0;
            for (int32_t g = guard_off[a]; g < guard_off[a + 1] && !stopped && ncases < 60; g++) {
                int visible = 1;
                for (int32_t j = gf_off[g]; j < gf_off[g + 1]; j++) visible &= fmap[gfacts[j]] >= 0;
                if (visible) {
                    for (int32_t j = gf_off[g]; j < gf_off[g + 1] && ncases < 60; j++) {
                        case_pre[ncases] = gfacts[j];
                        case_cost[ncases] = gowner[j] == p ? 1 : 0;
                        for (int i = 0; i < nnull && nneg < 4000; i++) case_neg[nneg++] = xneg[i];
                        case_neg_off[++ncases] = nneg;
                    }
                    for (int32_t j = gf_off[g]; j < gf_off[g + 1] && nnull < 200; j++) xneg[nnull++] = gfacts[j];
                    continue;
                }
                for (int32_t j = gf_off[g]; j < gf_off[g + 1] && ncases < 60; j++) {
                    if (gowner[j] != p) continue;
                    case_pre[ncases] = gfacts[j];
                    case_cost[ncases] = 1;
                    for (int i = 0; i < nnull && nneg < 4000; i++) case_neg[nneg++] = xneg[i];
                    case_neg_off[++ncases] = nneg;
                }
                for (int32_t j = gf_off[g]; j < gf_off[g + 1] && nnull < 200; j++)
                    if (gowner[j] == p) xneg[nnull++] = gfacts[j];
                stopped = 1;
            }
            case_pre[ncases] = -1;
            case_cost[ncases] = 0;
            for (int i = 0; i < nnull && nneg < 4000; i++) case_neg[nneg++] = xneg[i];
            case_neg_off[++ncases] = nneg;
            if (ncases >= 60 || nnull >= 200 || nneg >= 4000) { /* too many cases: charge nothing here (weaker, still admissible) */
                ncases = 1;
                case_pre[0] = -1;
                case_cost[0] = 0;
                case_neg_off[1] = 0;
            }
        }
        int npre_a = c->pre_off[a + 1] - c->pre_off[a], nneg_a = c->neg_off[a + 1] - c->neg_off[a];
        const int32_t *pre_a = c->pre + c->pre_off[a], *neg_a = c->neg + c->neg_off[a];
        for (int k = 0; k < ncases && !failed; k++) {
            /* concrete conditions of this case, checked for contradictions */
            int np = 0, nn = 0, bad = 0;
            for (int i = 0; i < npre_a; i++) cpre[np++] = pre_a[i];
            if (case_pre[k] >= 0) {
                int32_t x = case_pre[k];
                if (contains(neg_a, nneg_a, x)) bad = 1;
                for (int i = 0; i < npre_a && !bad; i++) bad = conflicting(goff, gids, x, pre_a[i]);
                if (!contains(cpre, np, x)) cpre[np++] = x;
            }
            for (int i = 0; i < nneg_a; i++) cneg[nn++] = neg_a[i];
            for (int32_t i = case_neg_off[k]; i < case_neg_off[k + 1] && !bad; i++) {
                if (contains(cpre, np, case_neg[i])) bad = 1;
                else if (nn < 500) cneg[nn++] = case_neg[i];
            }
            if (bad) continue;
            sort_unique(cneg, &nn);
            int na_ = 0, nb = 0, nc = 0, nd = 0;
            for (int i = 0; i < np; i++)
                if (fmap[cpre[i]] >= 0) apre[na_++] = fmap[cpre[i]];
            /* negative: abstract facts all of whose members are excluded */
            for (int i = 0; i < nn; i++) {
                int32_t f = fmap[cneg[i]];
                if (f < 0 || contains(aneg, nb, f)) continue;
                int count = 0;
                for (int j = 0; j < nn; j++) count += fmap[cneg[j]] == f;
                if (count == members[f]) aneg[nb++] = f;
            }
            for (int32_t i = c->add_off[a]; i < c->add_off[a + 1]; i++)
                if (fmap[c->add[i]] >= 0) aadd[nc++] = fmap[c->add[i]];
            for (int32_t i = c->del_off[a]; i < c->del_off[a + 1]; i++) {
                int32_t d = c->del[i], f = fmap[d];
                if (f < 0) continue;
                int ok = members[f] == 1 || contains(cpre, np, d);
                if (!ok) {
                    int count = 0;
                    for (int32_t j = c->del_off[a]; j < c->del_off[a + 1]; j++) count += fmap[c->del[j]] == f;
                    ok = count == members[f];
                }
                if (ok) adel[nd++] = f;
            }
            sort_unique(apre, &na_);
            sort_unique(aneg, &nb);
            sort_unique(aadd, &nc);
            sort_unique(adel, &nd);
            int nd2 = 0;
            for (int i = 0; i < nd; i++)
                if (!contains(aadd, nc, adel[i])) adel[nd2++] = adel[i];
            nd = nd2;
            int effect = nd > 0;
            for (int i = 0; i < nc && !effect; i++) effect = !contains(apre, na_, aadd[i]);
            if (!effect) continue;
            int n = 0;
            key[n++] = 0; /* length, set below */
            key[n++] = case_cost[k];
            key[n++] = na_;
            for (int i = 0; i < na_; i++) key[n++] = apre[i];
            key[n++] = nb;
            for (int i = 0; i < nb; i++) key[n++] = aneg[i];
            key[n++] = nc;
            for (int i = 0; i < nc; i++) key[n++] = aadd[i];
            key[n++] = nd;
            for (int i = 0; i < nd; i++) key[n++] = adel[i];
            key[0] = n;
            int fresh = keyset_add(&keys, key, n);
            if (fresh < 0) {
                failed = 1;
                break;
            }
            if (!fresh) continue;
            for (int i = 0; i < na_; i++) failed |= ivec_push(&pre, apre[i]);
            for (int i = 0; i < nb; i++) failed |= ivec_push(&neg, aneg[i]);
            for (int i = 0; i < nc; i++) failed |= ivec_push(&add, aadd[i]);
            for (int i = 0; i < nd; i++) failed |= ivec_push(&del, adel[i]);
            failed |= ivec_push(&pre_off, (int32_t)pre.len) | ivec_push(&neg_off, (int32_t)neg.len) |
                      ivec_push(&add_off, (int32_t)add.len) | ivec_push(&del_off, (int32_t)del.len) | ivec_push(&cost, case_cost[k]);
            /* objects named by the abstract facts (for twin pruning) */
            const int32_t *fargs_off = b[13].buf, *fargs = b[14].buf;
            int32_t *lists[4] = {apre, aneg, aadd, adel};
            int counts[4] = {na_, nb, nc, nd};
            for (int l = 0; l < 4; l++)
                for (int i = 0; i < counts[l]; i++)
                    for (int32_t j = fargs_off[lists[l][i]]; j < fargs_off[lists[l][i] + 1]; j++) failed |= ivec_push(&objs, fargs[j]);
            failed |= ivec_push(&obj_off, (int32_t)objs.len);
        }
    }
    PyObject *result = NULL;
    if (!failed) {
        Core *out = (Core *)c->ob_base.ob_type->tp_alloc(c->ob_base.ob_type, 0);
        if (out) {
            out->nfacts = nabs;
            out->W = Wa;
            out->nactions = (int)cost.len;
            out->pre_off = pre_off.data; out->pre = pre.data; out->neg_off = neg_off.data; out->neg = neg.data;
            out->add_off = add_off.data; out->add = add.data; out->del_off = del_off.data; out->del = del.data;
            out->cost = cost.data;
            pre_off.data = pre.data = neg_off.data = neg.data = add_off.data = add.data = del_off.data = del.data = cost.data = NULL;
            if (!out->pre) out->pre = malloc(sizeof(int32_t));
            if (!out->neg) out->neg = malloc(sizeof(int32_t));
            if (!out->add) out->add = malloc(sizeof(int32_t));
            if (!out->del) out->del = malloc(sizeof(int32_t));
            if (!out->cost) out->cost = malloc(sizeof(int32_t));
            out->init = calloc(Wa, sizeof(word));
            memcpy(out->init, b[9].buf, b[9].len < Wa * 8 ? b[9].len : Wa * 8);
            word *goal = calloc(Wa, sizeof(word));
            memcpy(goal, b[10].buf, b[10].len < Wa * 8 ? b[10].len : Wa * 8);
            out->goal_pos = mask_to_list(goal, Wa, &out->ngoal_pos);
            free(goal);
            word zero = 0;
            out->goal_neg = mask_to_list(&zero, 1, &out->ngoal_neg);
            Py_ssize_t n;
            int32_t *weight = copy_ints(&b[11], &n);
            out->fact_pred = copy_ints(&b[12], &n);
            out->fact_args_off = copy_ints(&b[13], &n);
            out->fact_args = copy_ints(&b[14], &n);
            out->obj_class = copy_ints(&b[15], &n);
            out->nobj = (int)n;
            int32_t *oo = obj_off.data, *ob = objs.data ? objs.data : malloc(sizeof(int32_t));
            obj_off.data = objs.data = NULL;
            if (core_finish(out, weight, oo, ob) < 0) Py_DECREF(out);
            else result = (PyObject *)out;
        }
    } else {
        PyErr_NoMemory();
    }
    for (int i = 0; i < 16; i++) PyBuffer_Release(&b[i]);
    ivec_free(&pre_off); ivec_free(&pre); ivec_free(&neg_off); ivec_free(&neg); ivec_free(&add_off); ivec_free(&add);
    ivec_free(&del_off); ivec_free(&del); ivec_free(&cost); ivec_free(&obj_off); ivec_free(&objs);
    free(keys.data);
    free(keys.table);
    return result;
}

/* ------------------------------------------------------------------ how actions are charged */

static int objs_meet(const word *x, const word *y, int OW) {
    for (int w = 0; w < OW; w++)
        if (x[w] & y[w]) return 1;
    return 0;
}

/* The argument positions of a fact's objects, sorted (an object that is no argument counts
   as position nargs); returns how many. */
static int role_positions(const int32_t *fobj_off, const int32_t *fobjs, const int32_t *args, int nargs, int32_t k,
                          int32_t *pos) {
    int n = 0;
    for (int32_t i = fobj_off[k]; i < fobj_off[k + 1] && n < 64; i++) {
        int at = nargs;
        for (int x = 0; x < nargs; x++)
            if (args[x] == fobjs[i]) {
                at = x;
                break;
            }
        int j = n++;
        while (j > 0 && pos[j - 1] > at) {
            pos[j] = pos[j - 1];
            j--;
        }
        pos[j] = at;
    }
    return n;
}

/* Whether fact k comes before fact j by role: their sorted argument positions compared
   lexicographically (a prefix first), then the fact numbers. */
static int role_less(const int32_t *fobj_off, const int32_t *fobjs, const int32_t *args, int nargs, int32_t k, int32_t j) {
    int32_t pk[64], pj[64];
    int nk = role_positions(fobj_off, fobjs, args, nargs, k, pk), nj = role_positions(fobj_off, fobjs, args, nargs, j, pj);
    for (int i = 0; i < nk && i < nj; i++)
        if (pk[i] != pj[i]) return pk[i] < pj[i];
    if (nk != nj) return nk < nj;
    return k < j;
}

/* charges(fact_group_off, fact_groups, group_off, group_facts, group_param_off, group_params, owner,
           target_off, targets)
   -> (owner_of, guard_off, guard_fact_off, guard_facts, guard_owner) as int32 bytes

   How each action's cost is charged to the patterns: the loop over thousands of actions of
   plannerl.heuristics._Analysis._charges, whose docstring states the rule. The caller numbers
   groups (their facts ascending) and patterns; objects are the core's own ids (those of its
   facts and actions): owner[k] is the pattern that owns fact k (-1: none), group_params the
   objects that every fact of a group names, targets the objects of each pattern's targets.
   owner_of[a] is -3 when two preconditions lie in one group (the action never applies), the
   owning pattern when the action changes owned facts, -1 when guards decide and -2 when none
   can; the guards of action a are guard_off[a] .. guard_off[a + 1] - 1, each a list of
   deciding facts with their owners. */
static PyObject *core_charges(Core *c, PyObject *args) {
    Py_buffer b[9];
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8]))
        return NULL;
    const int32_t *fg_off = b[0].buf, *fgroups = b[1].buf, *g_off = b[2].buf, *gfacts = b[3].buf, *gp_off = b[4].buf;
    const int32_t *gparams = b[5].buf, *owner = b[6].buf, *t_off = b[7].buf, *tobjs = b[8].buf;
    const int32_t *fobj_off = c->fact_args_off, *fobjs = c->fact_args, *aobj_off = c->act_obj_off, *aobjs = c->act_objs;
    int nobj = c->nobj;
    int ngroups = (int)(b[2].len / (Py_ssize_t)sizeof(int32_t)) - 1;
    int npatterns = (int)(b[7].len / (Py_ssize_t)sizeof(int32_t)) - 1;
    int OW = nobj / 64 + 1;
    int ok = ngroups >= 0 && npatterns >= 0 && b[0].len == (Py_ssize_t)((c->nfacts + 1) * sizeof(int32_t)) &&
             b[6].len == (Py_ssize_t)(c->nfacts * sizeof(int32_t)) && b[4].len == b[2].len;
    for (int i = 0; ok && i < b[1].len / (Py_ssize_t)sizeof(int32_t); i++) ok = fgroups[i] >= 0 && fgroups[i] < ngroups;
    for (int i = 0; ok && i < b[3].len / (Py_ssize_t)sizeof(int32_t); i++) ok = gfacts[i] >= 0 && gfacts[i] < c->nfacts;
    for (int i = 0; ok && i < c->nfacts; i++) ok = owner[i] < npatterns;
    for (int i = 0; ok && i < b[5].len / (Py_ssize_t)sizeof(int32_t); i++) ok = gparams[i] >= 0 && gparams[i] < nobj;
    for (int i = 0; ok && i < b[8].len / (Py_ssize_t)sizeof(int32_t); i++) ok = tobjs[i] >= 0 && tobjs[i] < nobj;
    if (!ok) {
        for (int i = 0; i < 9; i++) PyBuffer_Release(&b[i]);
        PyErr_SetString(PyExc_ValueError, "charges: inconsistent buffers");
        return NULL;
    }
    /* object sets as bit sets: each group's params, each pattern's targets, all targets */
    word *params = calloc((size_t)(ngroups + 1) * OW, sizeof(word)), *target = calloc((size_t)(npatterns + 1) * OW, sizeof(word));
    word *sets = calloc((size_t)5 * OW, sizeof(word));
    int32_t *stamp = malloc((ngroups + 1) * sizeof(int32_t)), *ranked = malloc((ngroups + 1) * sizeof(int32_t));
    char *with_owned = calloc(ngroups + 1, 1), *carried = calloc(ngroups + 1, 1);
    IVec owner_of = {0}, guard_off = {0}, guard_fact_off = {0}, guard_facts = {0}, guard_owner = {0};
    int failed = !params || !target || !sets || !stamp || !ranked || !with_owned || !carried;
    for (int g = 0; !failed && g < ngroups; g++) {
        stamp[g] = -1;
        for (int32_t i = gp_off[g]; i < gp_off[g + 1]; i++) set_bit(params + (size_t)g * OW, gparams[i]);
        for (int32_t i = g_off[g]; i < g_off[g + 1]; i++) with_owned[g] |= owner[gfacts[i]] >= 0;
    }
    word *all_targets = target + (size_t)npatterns * OW;
    for (int p = 0; !failed && p < npatterns; p++)
        for (int32_t i = t_off[p]; i < t_off[p + 1]; i++) {
            set_bit(target + (size_t)p * OW, tobjs[i]);
            set_bit(all_targets, tobjs[i]);
        }
    word *added = sets, *deleted = sets + OW, *dest = sets + 2 * OW, *argset = sets + 3 * OW, *common = sets + 4 * OW;
    failed = failed || ivec_push(&guard_off, 0) < 0 || ivec_push(&guard_fact_off, 0) < 0;
    for (int a = 0; a < c->nactions && !failed; a++) {
        int32_t own = -1;
        int never = 0;
        for (int32_t i = c->pre_off[a]; i < c->pre_off[a + 1] && !never; i++)
            for (int32_t j = fg_off[c->pre[i]]; j < fg_off[c->pre[i] + 1] && !never; j++) {
                never = stamp[fgroups[j]] == a;
                stamp[fgroups[j]] = a;
            }
        if (never) own = -3;
        /* the changed owned fact that names the earliest arguments decides */
        int32_t best = -1, first_owner = -1, mixed = 0;
        const int32_t *act = aobjs + aobj_off[a];
        int nargs = aobj_off[a + 1] - aobj_off[a];
        for (int l = 0; l < 2 && !never; l++) {
            const int32_t *off = l ? c->del_off : c->add_off, *list = l ? c->del : c->add;
            for (int32_t i = off[a]; i < off[a + 1]; i++) {
                int32_t k = list[i];
                if (owner[k] < 0) continue;
                if (best < 0) {
                    best = k;
                    first_owner = owner[k];
                    continue;
                }
                mixed |= owner[k] != first_owner;
                if (role_less(fobj_off, fobjs, act, nargs, k, best)) best = k;
            }
        }
        if (best >= 0) own = mixed ? owner[best] : first_owner;
        if (own != -1) {
            failed = ivec_push(&owner_of, own) < 0 || ivec_push(&guard_off, (int32_t)guard_fact_off.len - 1) < 0;
            continue;
        }
        /* guards: owned groups about the arguments, carried ones first, then destination, origin */
        memset(sets, 0, (size_t)5 * OW * sizeof(word));
        for (int l = 0; l < 2; l++) {
            const int32_t *off = l ? c->del_off : c->add_off, *list = l ? c->del : c->add;
            for (int32_t i = off[a]; i < off[a + 1]; i++) {
                int32_t k = list[i];
                if (fg_off[k] == fg_off[k + 1]) continue;
                for (int32_t j = fobj_off[k]; j < fobj_off[k + 1]; j++) set_bit(l ? deleted : added, fobjs[j]);
            }
        }
        for (int w = 0; w < OW; w++) dest[w] = added[w] & ~deleted[w] & all_targets[w];
        for (int x = 0; x < nargs; x++)
            if (act[x] >= 0) set_bit(argset, act[x]);
        int nranked = 0;
        for (int rank = 0; rank < 4; rank++)
            for (int g = 0; g < ngroups; g++) {
                if (!with_owned[g] || !objs_meet(params + (size_t)g * OW, argset, OW)) continue;
                int r, moves = 0;
                for (int w = 0; w < OW; w++) {
                    common[w] = params[(size_t)g * OW + w] & argset[w];
                    moves |= (common[w] & added[w] & deleted[w]) != 0;
                }
                r = moves ? 0 : objs_meet(common, added, OW) ? 1 : objs_meet(common, deleted, OW) ? 2 : 3;
                if (r != rank) continue;
                carried[g] = (char)moves;
                ranked[nranked++] = g;
            }
        failed = ivec_push(&owner_of, nranked ? -1 : -2) < 0;
        for (int n = 0; n < nranked && !failed; n++) {
            int g = ranked[n];
            for (int32_t i = g_off[g]; i < g_off[g + 1] && !failed; i++) {
                int32_t k = gfacts[i];
                if (owner[k] < 0 || (carried[g] && !objs_meet(dest, target + (size_t)owner[k] * OW, OW))) continue;
                failed = ivec_push(&guard_facts, k) < 0 || ivec_push(&guard_owner, owner[k]) < 0;
            }
            failed = failed || ivec_push(&guard_fact_off, (int32_t)guard_facts.len) < 0;
        }
        failed = failed || ivec_push(&guard_off, (int32_t)guard_fact_off.len - 1) < 0;
    }
    for (int i = 0; i < 9; i++) PyBuffer_Release(&b[i]);
    PyObject *out = NULL;
    if (!failed) {
        IVec *parts[5] = {&owner_of, &guard_off, &guard_fact_off, &guard_facts, &guard_owner};
        out = PyTuple_New(5);
        for (int i = 0; out && i < 5; i++) {
            PyObject *x = PyBytes_FromStringAndSize((const char *)parts[i]->data, parts[i]->len * sizeof(int32_t));
            if (!x) {
                Py_CLEAR(out);
                break;
            }
            PyTuple_SET_ITEM(out, i, x);
        }
    } else {
        PyErr_NoMemory();
    }
    free(params);
    free(target);
    free(sets);
    free(stamp);
    free(ranked);
    free(with_owned);
    free(carried);
    ivec_free(&owner_of);
    ivec_free(&guard_off);
    ivec_free(&guard_fact_off);
    ivec_free(&guard_facts);
    ivec_free(&guard_owner);
    return out;
}

static PyObject *core_action_count(Core *c, PyObject *unused) { return PyLong_FromLong(c->nactions); }

static PyObject *state_bytes(const word *s, int W) { return PyBytes_FromStringAndSize((const char *)s, W * sizeof(word)); }

static int read_state(const Core *c, PyObject *obj, word *out) {
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_SIMPLE) < 0) return -1;
    memset(out, 0, c->W * sizeof(word));
    memcpy(out, b.buf, b.len < (Py_ssize_t)(c->W * 8) ? b.len : c->W * 8);
    PyBuffer_Release(&b);
    return 0;
}

/* canonical(state) -> (canonical state, permutation as int32 bytes) */
static PyObject *core_canonical(Core *c, PyObject *arg) {
    word *s = c->scratch, *out = c->scratch + c->W;
    if (read_state(c, arg, s) < 0) return NULL;
    canonicalise(c, s, out, c->perm);
    PyObject *perm = PyBytes_FromStringAndSize((const char *)c->perm, c->nobj * sizeof(int32_t));
    PyObject *st = state_bytes(out, c->W);
    if (!perm || !st) {
        Py_XDECREF(perm);
        Py_XDECREF(st);
        return NULL;
    }
    return Py_BuildValue("(NN)", st, perm);
}

/* ------------------------------------------------------------------ pattern databases */

/* signature(relabel) -> bytes: the task with every fact f renamed to relabel[f] (a permutation
   of the facts): its goal, then its actions as records (cost, then the sorted renamed
   precondition, negative precondition, add and delete lists, each after its length) in
   sorted order. Two Cores whose signatures are equal are the same task up to those
   renamings, so their distances agree; plannerl.heuristics builds one database for such
   patterns. */
static void sort_records(int32_t *idx, int32_t *tmp, int n, const int32_t *rec, int width) {
    for (int run = 1; run < n; run *= 2) {
        for (int lo = 0; lo < n; lo += 2 * run) {
            int mid = lo + run < n ? lo + run : n, hi = lo + 2 * run < n ? lo + 2 * run : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = memcmp(rec + (size_t)idx[j] * width, rec + (size_t)idx[i] * width, width * sizeof(int32_t)) < 0 ? idx[j++]
                                                                                                                           : idx[i++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, n * sizeof(int32_t));
    }
}

static PyObject *core_signature(Core *c, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    if (b.len != (Py_ssize_t)(c->nfacts * sizeof(int32_t))) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "signature: one new index per fact expected");
        return NULL;
    }
    const int32_t *relabel = b.buf;
    char *seen = calloc(c->nfacts + 1, 1);
    int permutation = seen != NULL;
    for (int f = 0; f < c->nfacts && permutation; f++) {
        permutation = relabel[f] >= 0 && relabel[f] < c->nfacts && !seen[relabel[f]];
        if (permutation) seen[relabel[f]] = 1;
    }
    free(seen);
    if (!permutation) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "signature: the renaming must be a permutation of the facts");
        return NULL;
    }
    int width = 5;
    for (int a = 0; a < c->nactions; a++) {
        int n = 5 + (c->pre_off[a + 1] - c->pre_off[a]) + (c->neg_off[a + 1] - c->neg_off[a]) + (c->add_off[a + 1] - c->add_off[a]) +
                (c->del_off[a + 1] - c->del_off[a]);
        if (n > width) width = n;
    }
    size_t head = 3 + (size_t)c->ngoal_pos + c->ngoal_neg;
    int32_t *rec = calloc((size_t)c->nactions * width + 1, sizeof(int32_t));
    int32_t *idx = malloc((c->nactions + 1) * sizeof(int32_t)), *tmp = malloc((c->nactions + 1) * sizeof(int32_t));
    PyObject *out = PyBytes_FromStringAndSize(NULL, (head + (size_t)c->nactions * width) * sizeof(int32_t));
    if (!rec || !idx || !tmp || !out) {
        free(rec);
        free(idx);
        free(tmp);
        Py_XDECREF(out);
        PyBuffer_Release(&b);
        return PyErr_NoMemory();
    }
    int32_t *o = (int32_t *)PyBytes_AS_STRING(out);
    o[0] = width;
    o[1] = c->ngoal_pos;
    int ng = 2;
    for (int i = 0; i < c->ngoal_pos; i++) o[ng++] = relabel[c->goal_pos[i]];
    sort_unique(o + 2, &(int){c->ngoal_pos});
    o[ng++] = c->ngoal_neg;
    for (int i = 0; i < c->ngoal_neg; i++) o[ng++] = relabel[c->goal_neg[i]];
    sort_unique(o + 3 + c->ngoal_pos, &(int){c->ngoal_neg});
    for (int a = 0; a < c->nactions; a++) {
        int32_t *r = rec + (size_t)a * width;
        int n = 0;
        r[n++] = c->cost[a];
        const int32_t *offs[4] = {c->pre_off, c->neg_off, c->add_off, c->del_off};
        const int32_t *lists[4] = {c->pre, c->neg, c->add, c->del};
        for (int l = 0; l < 4; l++) {
            int m = offs[l][a + 1] - offs[l][a];
            r[n++] = m;
            for (int i = 0; i < m; i++) r[n + i] = relabel[lists[l][offs[l][a] + i]];
            sort_unique(r + n, &m);
            n += m;
        }
        idx[a] = a;
    }
    sort_records(idx, tmp, c->nactions, rec, width);
    for (int a = 0; a < c->nactions; a++) memcpy(o + head + (size_t)a * width, rec + (size_t)idx[a] * width, width * sizeof(int32_t));
    free(rec);
    free(idx);
    free(tmp);
    PyBuffer_Release(&b);
    return out;
}


/* build_pdb(max_states, more_inits=b"") -> number of canonical abstract states; raises
   MemoryError or returns -1 when max_states is exceeded (the database is then unusable).
   The database holds every state reachable from the initial state or from one of
   `more_inits` (concatenated states), so one database can serve several isomorphic patterns
   whose initial states differ. */
static PyObject *core_build_pdb(Core *c, PyObject *args) {
    long long max_states;
    Py_buffer more = {0};
    if (!PyArg_ParseTuple(args, "L|y*", &max_states, &more)) return NULL;
    stateset_free(&c->pdb);
    free(c->pdb_h);
    c->pdb_h = NULL;
    c->pdb_ready = 0;
    if (stateset_init(&c->pdb, c->W) < 0) return PyErr_NoMemory();
    int W = c->W, is_new;
    word *child = malloc(2 * W * sizeof(word)), *canon = child + W;
    int32_t *perm = malloc((c->nobj + 1) * sizeof(int32_t));
    int32_t *acts = malloc((c->nactions + 1) * sizeof(int32_t));
    IVec esrc = {0}, edst = {0}, ecost = {0};
    int failed = 0;
    canonicalise(c, c->init, canon, perm);
    stateset_insert(&c->pdb, canon, &is_new);
    for (Py_ssize_t off = 0; more.buf && off + (Py_ssize_t)(W * sizeof(word)) <= more.len; off += W * sizeof(word)) {
        memcpy(child, (const char *)more.buf + off, W * sizeof(word));
        canonicalise(c, child, canon, perm);
        stateset_insert(&c->pdb, canon, &is_new);
    }
    if (more.buf) PyBuffer_Release(&more);
    for (size_t id = 0; id < c->pdb.n && !failed; id++) {
        memcpy(child + 0, stateset_get(&c->pdb, (int32_t)id), W * sizeof(word));
        memcpy(c->scratch + 2 * W, child, W * sizeof(word));
        const word *s = c->scratch + 2 * W;
        int na = prune_twin_actions(c, s, acts, applicable_actions(c, s, acts));
        for (int i = 0; i < na; i++) {
            apply_action(c, s, acts[i], child);
            canonicalise(c, child, canon, perm);
            int32_t to = stateset_insert(&c->pdb, canon, &is_new);
            if (to < 0 || ivec_push(&esrc, (int32_t)id) < 0 || ivec_push(&edst, to) < 0 || ivec_push(&ecost, c->cost[acts[i]]) < 0) {
                failed = 2;
                break;
            }
            if ((long long)c->pdb.n > max_states) {
                failed = 1;
                break;
            }
        }
    }
    if (!failed) {
        size_t n = c->pdb.n, m = esrc.len;
        int32_t *h = malloc((n + 1) * sizeof(int32_t));
        int32_t *roff = calloc(n + 2, sizeof(int32_t));
        int32_t *redge = malloc((m + 1) * sizeof(int32_t));
        size_t cap = 2 * (n + m) + 4;
        int32_t *deque = malloc(cap * sizeof(int32_t));
        int32_t *fill2 = malloc((n + 1) * sizeof(int32_t));
        if (!h || !roff || !redge || !deque || !fill2) {
            failed = 2;
        } else {
            for (size_t e = 0; e < m; e++) roff[edst.data[e] + 1]++;
            for (size_t k = 0; k < n; k++) roff[k + 1] += roff[k];
            memcpy(fill2, roff, (n + 1) * sizeof(int32_t));
            for (size_t e = 0; e < m; e++) redge[fill2[edst.data[e]]++] = (int32_t)e;
            /* 0-1 BFS backwards from the goals: at most n + m pushes at either end */
            size_t head = n + m + 2, tail = head;
            for (size_t k = 0; k < n; k++) {
                h[k] = INF_H;
                if (is_goal(c, stateset_get(&c->pdb, (int32_t)k))) {
                    h[k] = 0;
                    deque[tail++] = (int32_t)k;
                }
            }
            while (head < tail) {
                int32_t v = deque[head++];
                for (int32_t j = roff[v]; j < roff[v + 1]; j++) {
                    int32_t e = redge[j], u = esrc.data[e], w = ecost.data[e];
                    if (h[v] + w < h[u]) {
                        h[u] = h[v] + w;
                        if (w == 0) deque[--head] = u;
                        else deque[tail++] = u;
                    }
                }
            }
            c->pdb_h = h;
            h = NULL;
            c->pdb_ready = 1;
        }
        free(h);
        free(roff);
        free(redge);
        free(deque);
        free(fill2);
    }
    free(child);
    free(perm);
    free(acts);
    ivec_free(&esrc);
    ivec_free(&edst);
    ivec_free(&ecost);
    if (failed == 2) return PyErr_NoMemory();
    if (failed == 1) return PyLong_FromLong(-1);
    return PyLong_FromSize_t(c->pdb.n);
}

/* h of an abstract state (raw, not canonical): cached; INF_H for dead ends; 0 when the
   state is not in the database (not reachable from the abstract initial state) or the
   database could not be built (0 is always admissible). */
static int32_t pdb_value(Core *c, const word *raw) {
    if (!c->pdb_ready) return 0; /* the database is not built (over its state limit): it knows nothing */
    int32_t id = stateset_find(&c->cache, raw);
    if (id >= 0) return c->cache_h[id];
    word *canon = c->scratch + 3 * c->W;
    canonicalise(c, raw, canon, c->perm);
    int32_t k = stateset_find(&c->pdb, canon);
    int32_t h = k >= 0 ? c->pdb_h[k] : 0;
    int is_new;
    if (c->cache.n >= CACHE_LIMIT) { /* a database shared by many tasks: start the cache afresh */
        stateset_free(&c->cache);
        if (stateset_init(&c->cache, c->W) < 0) return h;
    }
    int32_t slot = stateset_insert(&c->cache, raw, &is_new);
    if (slot >= 0) {
        if ((size_t)slot >= c->cache_cap) {
            size_t cap = c->cache_cap * 2;
            int32_t *grown = realloc(c->cache_h, cap * sizeof(int32_t));
            if (!grown) return h;
            c->cache_h = grown;
            c->cache_cap = cap;
        }
        c->cache_h[slot] = h;
    }
    return h;
}

static PyObject *core_pdb_value(Core *c, PyObject *arg) {
    if (!c->pdb_ready) {
        PyErr_SetString(PyExc_RuntimeError, "pattern database not built");
        return NULL;
    }
    word *s = c->scratch;
    if (read_state(c, arg, s) < 0) return NULL;
    memcpy(c->scratch + 2 * c->W, s, c->W * sizeof(word));
    int32_t h = pdb_value(c, c->scratch + 2 * c->W);
    return PyLong_FromLong(h >= INF_H ? -1 : h);
}

/* pdb_has(state) -> whether the database holds the state's canonical form (then it holds
   every state reachable from it, with its exact distance); False when not built. */
static PyObject *core_pdb_has(Core *c, PyObject *arg) {
    word *s = c->scratch, *canon = c->scratch + c->W;
    if (read_state(c, arg, s) < 0) return NULL;
    if (!c->pdb_ready) Py_RETURN_FALSE;
    canonicalise(c, s, canon, c->perm);
    return PyBool_FromLong(stateset_find(&c->pdb, canon) >= 0);
}

/* ------------------------------------------------------------------ A* over canonical states */

typedef struct {
    Core *core;
    int32_t *proj; /* concrete fact -> abstract fact, -1 when outside the pattern */
    word *buf;
} Pattern;

typedef struct {
    int32_t parent, action, g;
} Entry;

typedef struct {
    Entry *data;
    size_t len, cap;
} EVec;

static int evec_push(EVec *v, Entry e) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        Entry *data = realloc(v->data, cap * sizeof(Entry));
        if (!data) return -1;
        v->data = data;
        v->cap = cap;
    }
    v->data[v->len++] = e;
    return 0;
}

static int32_t heuristic(Pattern *pats, int npat, const word *s, int W) {
    int32_t total = 0;
    for (int p = 0; p < npat; p++) {
        Core *a = pats[p].core;
        word *x = pats[p].buf;
        memset(x, 0, a->W * sizeof(word));
        for (int w = 0; w < W; w++) {
            word bits = s[w];
            while (bits) {
                int k = w * 64 + __builtin_ctzll(bits);
                bits &= bits - 1;
                int32_t m = pats[p].proj[k];
                if (m >= 0) set_bit(x, m);
            }
        }
        int32_t h = pdb_value(a, x);
        if (h >= INF_H) return INF_H;
        total += h;
    }
    return total;
}

/* search(start, patterns, max_states, time_limit) where patterns is a list of (Core, proj bytes).
   Returns (status, cstar, expanded, generated, stored, states bytes, g bytes, edges bytes) where
   status 0 = solved, 1 = no plan, 2 = state limit, 3 = time limit; states/g/edges describe the
   canonical states on shortest plans (edges: node, action, child triples over those states). */
static PyObject *core_search(Core *c, PyObject *args) {
    PyObject *start_obj, *pat_list;
    long long max_states;
    double time_limit;
    if (!PyArg_ParseTuple(args, "OOLd", &start_obj, &pat_list, &max_states, &time_limit)) return NULL;
    if (!PyList_Check(pat_list)) {
        PyErr_SetString(PyExc_TypeError, "patterns must be a list");
        return NULL;
    }
    int npat = (int)PyList_GET_SIZE(pat_list);
    Pattern *pats = calloc(npat + 1, sizeof(Pattern));
    for (int p = 0; p < npat; p++) {
        PyObject *item = PyList_GET_ITEM(pat_list, p);
        PyObject *core_obj;
        Py_buffer proj;
        if (!PyArg_ParseTuple(item, "Oy*", &core_obj, &proj)) {
            free(pats);
            return NULL;
        }
        pats[p].core = (Core *)core_obj;
        pats[p].proj = malloc((c->nfacts + 1) * sizeof(int32_t));
        memcpy(pats[p].proj, proj.buf, c->nfacts * sizeof(int32_t));
        PyBuffer_Release(&proj);
        pats[p].buf = malloc(pats[p].core->W * sizeof(word));
    }
    int W = c->W;
    word *start = malloc(W * sizeof(word)), *canon = malloc(W * sizeof(word)), *child = malloc(W * sizeof(word));
    int32_t *perm = malloc((c->nobj + 1) * sizeof(int32_t));
    int32_t *acts = malloc((c->nactions + 1) * sizeof(int32_t));
    if (!start || !canon || !child || !perm || !acts) return PyErr_NoMemory();
    read_state(c, start_obj, start);

    StateSet nodes;
    stateset_init(&nodes, W);
    IVec g = {0}, h = {0}, closed = {0}, pred_head = {0};
    IVec pred_parent = {0}, pred_action = {0}, pred_next = {0};
    EVec *buckets = NULL;
    size_t nbuckets = 0;
    long long expanded = 0, generated = 0;
    int status = 1, failed = 0;
    int32_t best = INF_H;
    IVec goals = {0};
    double t0 = now_seconds();
    int interrupted = 0;

    int32_t h0 = heuristic(pats, npat, start, W);
    if (h0 < INF_H) {
        nbuckets = (size_t)h0 + 64;
        buckets = calloc(nbuckets, sizeof(EVec));
        Entry e0 = {-1, -1, 0};
        if (!buckets || evec_push(&buckets[h0], e0) < 0) failed = 1;
        size_t f = h0;
        long long pops = 0;
        while (!failed && f < nbuckets && (int32_t)f <= best) {
            if (buckets[f].len == 0) {
                f++;
                continue;
            }
            Entry e = buckets[f].data[--buckets[f].len];
            if (++pops % 1024 == 0) {
                if (PyErr_CheckSignals() < 0) { /* Ctrl-C: KeyboardInterrupt is set */
                    interrupted = 1;
                    break;
                }
                if (time_limit > 0 && now_seconds() - t0 > time_limit) {
                    status = 3;
                    break;
                }
            }
            const word *src;
            if (e.parent < 0) {
                src = start;
            } else {
                apply_action(c, stateset_get(&nodes, e.parent), e.action, child);
                src = child;
            }
            canonicalise(c, src, canon, perm);
            int is_new;
            int32_t node = stateset_insert(&nodes, canon, &is_new);
            if (node < 0) {
                failed = 1;
                break;
            }
            if (is_new) {
                if (ivec_push(&g, e.g) < 0 || ivec_push(&h, (int32_t)f - e.g) < 0 || ivec_push(&closed, -1) < 0 ||
                    ivec_push(&pred_head, -1) < 0) {
                    failed = 1;
                    break;
                }
                if ((long long)nodes.n > max_states) {
                    status = 2;
                    break;
                }
            } else if (e.g < g.data[node]) {
                g.data[node] = e.g;
                pred_head.data[node] = -1;
            } else if (e.g > g.data[node]) {
                continue;
            }
            if (e.parent >= 0) {
                if (ivec_push(&pred_parent, e.parent) < 0 || ivec_push(&pred_action, e.action) < 0 ||
                    ivec_push(&pred_next, pred_head.data[node]) < 0) {
                    failed = 1;
                    break;
                }
                pred_head.data[node] = (int32_t)pred_parent.len - 1;
            }
            if (closed.data[node] == e.g) continue;
            closed.data[node] = e.g;
            const word *s = stateset_get(&nodes, node);
            if (is_goal(c, s)) {
                if (e.g < best) best = e.g;
                if (ivec_push(&goals, node) < 0) failed = 1;
                continue;
            }
            expanded++;
            /* copy: the arena may move while children are generated */
            memcpy(c->scratch, s, W * sizeof(word));
            /* of actions that differ only by twin objects (moves to interchangeable empty
               tables) one is searched: they lead to one canonical state. The optimal-plan
               graph gets all of them back below. */
            int na = prune_twin_actions(c, c->scratch, acts, applicable_actions(c, c->scratch, acts));
            int32_t hp = h.data[node];
            for (int i = 0; i < na; i++) {
                int a = acts[i];
                apply_action(c, c->scratch, a, child);
                int32_t hc = heuristic(pats, npat, child, W);
                if (hc >= INF_H) continue;
                if (hc < hp - c->cost[a]) hc = hp - c->cost[a]; /* pathmax */
                int32_t gc = e.g + c->cost[a];
                size_t fc = (size_t)gc + hc;
                if ((int32_t)fc > best) continue;
                if (fc >= nbuckets) {
                    size_t nb = fc * 2 + 16;
                    EVec *grown = realloc(buckets, nb * sizeof(EVec));
                    if (!grown) {
                        failed = 1;
                        break;
                    }
                    memset(grown + nbuckets, 0, (nb - nbuckets) * sizeof(EVec));
                    buckets = grown;
                    nbuckets = nb;
                }
                Entry ce = {node, a, gc};
                if (evec_push(&buckets[fc], ce) < 0) {
                    failed = 1;
                    break;
                }
                generated++;
            }
        }
        if (!failed && status != 2 && status != 3) status = best < INF_H ? 0 : 1;
    }

    PyObject *result = NULL;
    if (failed) {
        PyErr_NoMemory();
    } else if (!interrupted) {
        /* states on shortest plans: backwards from the goals at depth best over optimal edges */
        size_t n = nodes.n;
        int32_t *index = malloc((n + 1) * sizeof(int32_t));
        int32_t *stack = malloc((n + 1) * sizeof(int32_t));
        size_t sp = 0, count = 0;
        for (size_t k = 0; k < n; k++) index[k] = -1;
        if (status == 0) {
            for (size_t i = 0; i < goals.len; i++) {
                int32_t v = goals.data[i];
                if (g.data[v] == best && index[v] < 0) {
                    index[v] = (int32_t)count++;
                    stack[sp++] = v;
                }
            }
            while (sp) {
                int32_t v = stack[--sp];
                for (int32_t j = pred_head.data[v]; j >= 0; j = pred_next.data[j]) {
                    int32_t u = pred_parent.data[j];
                    if (g.data[u] + c->cost[pred_action.data[j]] == g.data[v] && index[u] < 0) {
                        index[u] = (int32_t)count++;
                        stack[sp++] = u;
                    }
                }
            }
        }
        PyObject *states = PyBytes_FromStringAndSize(NULL, count * W * sizeof(word));
        PyObject *gs = PyBytes_FromStringAndSize(NULL, count * sizeof(int32_t));
        IVec edges = {0};
        if (states && gs) {
            word *sp_out = (word *)PyBytes_AS_STRING(states);
            int32_t *g_out = (int32_t *)PyBytes_AS_STRING(gs);
            /* every action of a node on a shortest plan that leads to a node on one, one step
               deeper: the twins pruned while searching are back */
            for (size_t k = 0; k < n; k++) {
                if (index[k] < 0) continue;
                memcpy(sp_out + (size_t)index[k] * W, stateset_get(&nodes, (int32_t)k), W * sizeof(word));
                g_out[index[k]] = g.data[k];
                memcpy(c->scratch, stateset_get(&nodes, (int32_t)k), W * sizeof(word));
                int na = applicable_actions(c, c->scratch, acts);
                for (int i = 0; i < na; i++) {
                    apply_action(c, c->scratch, acts[i], child);
                    canonicalise(c, child, canon, perm);
                    int32_t v = stateset_find(&nodes, canon);
                    if (v >= 0 && index[v] >= 0 && g.data[k] + c->cost[acts[i]] == g.data[v]) {
                        ivec_push(&edges, index[k]);
                        ivec_push(&edges, acts[i]);
                        ivec_push(&edges, index[v]);
                    }
                }
            }
            PyObject *eb = PyBytes_FromStringAndSize((const char *)edges.data, edges.len * sizeof(int32_t));
            if (eb)
                result = Py_BuildValue("(iiLLnNNN)", status, status == 0 ? best : -1, expanded, generated, (Py_ssize_t)n, states,
                                       gs, eb);
            else {
                Py_DECREF(states);
                Py_DECREF(gs);
            }
        } else {
            Py_XDECREF(states);
            Py_XDECREF(gs);
        }
        ivec_free(&edges);
        free(index);
        free(stack);
    }
    for (size_t f = 0; f < nbuckets; f++) free(buckets[f].data);
    free(buckets);
    stateset_free(&nodes);
    ivec_free(&g); ivec_free(&h); ivec_free(&closed); ivec_free(&pred_head);
    ivec_free(&pred_parent); ivec_free(&pred_action); ivec_free(&pred_next); ivec_free(&goals);
    for (int p = 0; p < npat; p++) {
        free(pats[p].proj);
        free(pats[p].buf);
    }
    free(pats);
    free(start);
    free(canon);
    free(child);
    free(perm);
    free(acts);
    return result;
}

/* successors(state) -> list of (action, next state bytes) in ascending action order */
static PyObject *core_successors(Core *c, PyObject *arg) {
    word *s = c->scratch, *child = c->scratch + c->W;
    if (read_state(c, arg, s) < 0) return NULL;
    int32_t *acts = malloc((c->nactions + 1) * sizeof(int32_t));
    int na = applicable_actions(c, s, acts);
    PyObject *list = PyList_New(na);
    for (int i = 0; list && i < na; i++) {
        apply_action(c, s, acts[i], child);
        PyList_SET_ITEM(list, i, Py_BuildValue("(iN)", acts[i], state_bytes(child, c->W)));
    }
    free(acts);
    return list;
}

static PyObject *core_cache_size(Core *c, PyObject *unused) { return PyLong_FromSize_t(c->cache.n); }

/* fact_lists() -> (pre_off, pre, neg_off, neg, add_off, add, del_off, del) as int32 bytes: the
   actions' fact lists, which Python would otherwise pull out of its int masks bit by bit. */
static PyObject *core_fact_lists(Core *c, PyObject *unused) {
    const int32_t *offs[4] = {c->pre_off, c->neg_off, c->add_off, c->del_off};
    const int32_t *lists[4] = {c->pre, c->neg, c->add, c->del};
    PyObject *out = PyTuple_New(8);
    for (int l = 0; out && l < 4; l++) {
        PyObject *o = PyBytes_FromStringAndSize((const char *)offs[l], (c->nactions + 1) * sizeof(int32_t));
        PyObject *x = PyBytes_FromStringAndSize((const char *)lists[l], offs[l][c->nactions] * sizeof(int32_t));
        if (!o || !x) {
            Py_XDECREF(o);
            Py_XDECREF(x);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, 2 * l, o);
        PyTuple_SET_ITEM(out, 2 * l + 1, x);
    }
    return out;
}

/* fact_users() -> (adders_off, adders, deleters_off, deleters) as int32 bytes: per fact, the
   actions that add it and those that delete it, ascending (the action lists transposed). */
static PyObject *core_fact_users(Core *c, PyObject *unused) {
    const int32_t *offs[2] = {c->add_off, c->del_off};
    const int32_t *lists[2] = {c->add, c->del};
    PyObject *out = PyTuple_New(4);
    for (int l = 0; out && l < 2; l++) {
        int32_t total = offs[l][c->nactions];
        int32_t *off = calloc(c->nfacts + 1, sizeof(int32_t)), *users = malloc((total + 1) * sizeof(int32_t));
        int32_t *fill = calloc(c->nfacts + 1, sizeof(int32_t));
        PyObject *o = NULL, *x = NULL;
        if (off && users && fill) {
            for (int32_t i = 0; i < total; i++) off[lists[l][i] + 1]++;
            for (int k = 0; k < c->nfacts; k++) off[k + 1] += off[k];
            for (int a = 0; a < c->nactions; a++)
                for (int32_t i = offs[l][a]; i < offs[l][a + 1]; i++) {
                    int32_t k = lists[l][i];
                    users[off[k] + fill[k]++] = a;
                }
            o = PyBytes_FromStringAndSize((const char *)off, (c->nfacts + 1) * sizeof(int32_t));
            x = PyBytes_FromStringAndSize((const char *)users, total * sizeof(int32_t));
        } else {
            PyErr_NoMemory();
        }
        free(off);
        free(users);
        free(fill);
        if (!o || !x) {
            Py_XDECREF(o);
            Py_XDECREF(x);
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, 2 * l, o);
        PyTuple_SET_ITEM(out, 2 * l + 1, x);
    }
    return out;
}

/* pdb_entry(i) -> (state bytes, h): the i-th state of the database, for tests and inspection */
static PyObject *core_pdb_entry(Core *c, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (!c->pdb_ready || i < 0 || (size_t)i >= c->pdb.n) {
        PyErr_SetString(PyExc_IndexError, "no such database entry");
        return NULL;
    }
    int32_t h = c->pdb_h[i];
    return Py_BuildValue("(Ni)", state_bytes(stateset_get(&c->pdb, (int32_t)i), c->W), h >= INF_H ? -1 : h);
}

static PyMethodDef core_methods[] = {
    {"canonical", (PyCFunction)core_canonical, METH_O, "canonical(state) -> (canonical state, object permutation)"},
    {"build_pdb", (PyCFunction)core_build_pdb, METH_VARARGS,
     "build_pdb(max_states, more_inits=b'') -> number of abstract states, -1 over the limit"},
    {"pdb_value", (PyCFunction)core_pdb_value, METH_O, "pdb_value(state) -> h, -1 for a dead end"},
    {"pdb_has", (PyCFunction)core_pdb_has, METH_O, "pdb_has(state) -> whether the database holds the state"},
    {"search", (PyCFunction)core_search, METH_VARARGS, "search(start, patterns, max_states, time_limit)"},
    {"successors", (PyCFunction)core_successors, METH_O, "successors(state) -> [(action, state)]"},
    {"cache_size", (PyCFunction)core_cache_size, METH_NOARGS, "states in the heuristic cache"},
    {"fact_lists", (PyCFunction)core_fact_lists, METH_NOARGS, "fact_lists() -> the actions' sparse pre, neg, add, del lists"},
    {"fact_users", (PyCFunction)core_fact_users, METH_NOARGS, "fact_users() -> the actions adding and deleting each fact"},
    {"pdb_entry", (PyCFunction)core_pdb_entry, METH_O, "pdb_entry(i) -> (state, h)"},
    {"project", (PyCFunction)core_project, METH_VARARGS, "project(p, ...) -> Core: the abstract task of a pattern"},
    {"charges", (PyCFunction)core_charges, METH_VARARGS, "charges(...) -> how each action's cost is charged to the patterns"},
    {"action_count", (PyCFunction)core_action_count, METH_NOARGS, "number of actions"},
    {"signature", (PyCFunction)core_signature, METH_O, "signature(relabel) -> bytes: the task up to a renaming of its facts"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "plannerl._core.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_doc = "A STRIPS task in sparse form for canonicalisation, pattern databases and A*.",
};

static struct PyModuleDef core_module = {PyModuleDef_HEAD_INIT, "_core", "plannerl's compiled search core.", -1, NULL};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
