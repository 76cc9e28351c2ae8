/* The presearcher's hot loop over a compact integer layout (optional; presearcher.py has the same
 * logic in Python and is used when this module is not built).
 *
 * Why native: at 100,000 stored queries a document has ~2,000 candidates.  In Python each
 * candidate costs ~1 us, nearly all of it cache misses on scattered objects (a list slot, a tuple,
 * its strings, the set's buckets), and a verified one several more.  Here keys and query numbers
 * are small integers, postings are int32 arrays, and the document's keys are a stamp per key id.
 *
 * Core holds, per key id, the numbers of the queries indexed under it (exact ones, which match
 * when the key is held, and those to verify), and per query number its verification program (see
 * "verification programs" below).  Documents come in batches of up to 64:
 * batch(doc_keys_list, key_ids, docs) selects each document's candidates (postings, and ranges of
 * long fields holding one of its values) and verifies them, keeping the matches; a query that is a
 * candidate of several documents is loaded once for all of them.  check(numbers, position)
 * verifies further candidates of one document (the always-check list); answer(verified, ids,
 * position) then gives the ids of all its matches in registration order, each query once.
 * candidates(doc_keys, key_ids, doc) is a batch of one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t *data;
    int32_t len, cap;
} IntList;

/* A query's program and stamp side by side: a candidate is a random query number, and reading the
 * two from arrays of their own was two cache misses per candidate (~1,700 per document at 100,000
 * queries) where one will do. */
typedef struct QuerySlot {
    struct Node *program;   /* how it is verified, or NULL (verified in Python) */
    uint32_t stamp;         /* stamp of the last batch it was a candidate of */
    uint64_t mask;          /* in that batch: a bit per document it is a candidate of */
} QuerySlot;

/* Documents are matched in batches of up to BATCH (one bit each in a 64-bit mask): a query that is
 * a candidate of several documents of a batch is loaded and, if it is a conjunction of keys,
 * verified once for all of them.  At 100,000 queries a batch of 64 recent-change events has ~11,000
 * distinct candidates for ~103,000 (document, candidate) pairs; each was a cache miss or two. */
#define BATCH 64

/* What a program reads of one document, fetched once per document on first use. */
typedef struct {
    PyObject *doc;          /* owned while its batch is matched */
    PyObject *tokens;       /* owned or NULL: doc.tokens */
    PyObject *numbers;      /* owned or NULL: doc.numbers */
    PyObject *prefixes;     /* owned or NULL: doc.prefix_view() */
    PyObject *keywords;     /* owned or NULL: doc.keywords */
    int patterns;           /* patterns tested on the document's terms directly, without the view */
} DocView;

typedef struct {
    PyObject_HEAD
    int32_t nkeys;          /* capacity of the per-key arrays */
    IntList *verify;        /* key id -> query numbers to verify */
    IntList *exact;         /* key id -> query numbers that match when the key is held */
    uint64_t *key_mask;     /* key id -> a bit per document of the current batch holding it */
    uint32_t *df;           /* key id -> documents that held it, for the keys counted (presearcher.observe) */
    uint8_t *counted;       /* key id -> 1 if its documents are counted */
    int32_t nqueries;       /* capacity of the per-query arrays */
    struct QuerySlot *slots; /* query number -> its program and stamp */
    uint32_t stamp;         /* of the current batch */
    uint64_t bit;           /* the bit of the document a program is evaluated for */
    int32_t ndocs;          /* documents in the current batch */
    IntList found[BATCH];   /* per document of the batch: the numbers matched */
    IntList held;           /* the key ids the batch's documents hold (each once) */
    IntList touched;        /* scratch: the batch's candidates to verify (each once) */
    DocView views[BATCH];
    uint64_t *seen;         /* scratch: a bit per query number, for answer() */
    struct RangeField *ranges;  /* the long fields queries are indexed under ranges of */
    int32_t nranges, ranges_cap;
} Core;

/* The queries indexed under a range of one long field: a value within [low, high] selects one
 * (exact: the range decides the query).  A linear scan of ~10,000 ranges is ~10 us and needs no
 * rebuilding when queries come and go. */
typedef struct RangeField {
    PyObject *field;        /* owned */
    long long *low, *high;
    int32_t *number;
    char *exact;
    int32_t len, cap;
} RangeField;

/* *ptr resized to `bytes` (0, or -1 with MemoryError and *ptr untouched). */
static int resize(void *ptr, size_t bytes) {
    void *grown = realloc(*(void **)ptr, bytes);
    if (!grown) { PyErr_NoMemory(); return -1; }
    *(void **)ptr = grown;
    return 0;
}

static int grow_keys(Core *self, int32_t needed) {
    if (needed <= self->nkeys) return 0;
    int32_t cap = self->nkeys ? self->nkeys : 1024;
    while (cap < needed) cap *= 2;
    if (resize(&self->verify, sizeof(IntList) * cap) || resize(&self->exact, sizeof(IntList) * cap)
        || resize(&self->key_mask, sizeof(uint64_t) * cap) || resize(&self->df, sizeof(uint32_t) * cap)
        || resize(&self->counted, cap))
        return -1;
    memset(self->df + self->nkeys, 0, sizeof(uint32_t) * (cap - self->nkeys));
    memset(self->counted + self->nkeys, 0, cap - self->nkeys);
    memset(self->verify + self->nkeys, 0, sizeof(IntList) * (cap - self->nkeys));
    memset(self->exact + self->nkeys, 0, sizeof(IntList) * (cap - self->nkeys));
    memset(self->key_mask + self->nkeys, 0, sizeof(uint64_t) * (cap - self->nkeys));
    self->nkeys = cap;
    return 0;
}

static int grow_queries(Core *self, int32_t needed) {
    if (needed <= self->nqueries) return 0;
    int32_t cap = self->nqueries ? self->nqueries : 1024;
    while (cap < needed) cap *= 2;
    if (resize(&self->slots, sizeof(QuerySlot) * cap) || resize(&self->seen, sizeof(uint64_t) * (cap / 64)))
        return -1;
    memset(self->seen + self->nqueries / 64, 0, sizeof(uint64_t) * ((cap - self->nqueries) / 64));
    memset(self->slots + self->nqueries, 0, sizeof(QuerySlot) * (cap - self->nqueries));
    self->nqueries = cap;
    return 0;
}

static int list_append(IntList *list, int32_t value) {
    if (list->len == list->cap) {
        int32_t cap = list->cap ? list->cap * 2 : 4;
        if (resize(&list->data, sizeof(int32_t) * cap)) return -1;
        list->cap = cap;
    }
    list->data[list->len++] = value;
    return 0;
}

static int non_negative(long value, const char *what) {
    if (value < 0 || value > INT32_MAX - 1) {
        PyErr_Format(PyExc_ValueError, "%s out of range: %ld", what, value);
        return -1;
    }
    return 0;
}

static PyObject *Core_add_posting(Core *self, PyObject *args) {
    long key, number;
    int exact;
    if (!PyArg_ParseTuple(args, "llp", &key, &number, &exact)) return NULL;
    if (non_negative(key, "key id") || non_negative(number, "query number")) return NULL;
    if (grow_keys(self, (int32_t)key + 1) || grow_queries(self, (int32_t)number + 1)) return NULL;
    if (list_append(exact ? &self->exact[key] : &self->verify[key], (int32_t)number)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Core_remove_posting(Core *self, PyObject *args) {
    long key, number;
    int exact;
    if (!PyArg_ParseTuple(args, "llp", &key, &number, &exact)) return NULL;
    if (key < 0 || key >= self->nkeys) Py_RETURN_FALSE;
    IntList *list = exact ? &self->exact[key] : &self->verify[key];
    for (int32_t i = 0; i < list->len; i++) {
        if (list->data[i] == number) {  /* keep the order, as list.remove does */
            memmove(list->data + i, list->data + i + 1, sizeof(int32_t) * (list->len - i - 1));
            list->len--;
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

/* Of the documents in `mask`, those that hold the conjunction `form` (as a mask). */
static inline uint64_t holds_mask(const Core *self, const int32_t *form, uint64_t mask) {
    const uint64_t *held = self->key_mask;
    int32_t nreq = form[0], nforb = form[1], ngroups = form[2];
    const int32_t *p = form + 3;
    for (int32_t i = 0; i < nreq && mask; i++) mask &= held[p[i]];
    p += nreq;
    for (int32_t i = 0; i < nforb && mask; i++) mask &= ~held[p[i]];
    p += nforb;
    for (int32_t g = 0; g < ngroups && mask; g++) {
        int32_t len = *p++;
        uint64_t any = 0;
        for (int32_t i = 0; i < len; i++) any |= held[p[i]];
        mask &= any;
        p += len;
    }
    return mask;
}

/* Whether the document a program is evaluated for holds the conjunction `form`. */
static inline int holds(const Core *self, const int32_t *form) {
    return holds_mask(self, form, self->bit) != 0;
}

/* Whether the document a program is evaluated for holds key `key`. */
static inline int held(const Core *self, int32_t key) {
    return (self->key_mask[key] & self->bit) != 0;
}

/* --- verification programs ----------------------------------------------------------------------
 *
 * A verified query's form (verification.py: compact_form) is compiled by native_program() into a
 * tree of tagged tuples and here into Nodes.  Keys are key ids checked against the document's
 * stamps; ranges, phrases and prefix/wildcard patterns read the document's analysis (its
 * ``numbers``, ``tokens`` and ``prefix_view()``) through dict lookups with cached string hashes
 * (and binary searches of the view's sorted terms);
 * whatever else a form holds stays a Python callable (P_CALL) called with the document.  Each Node
 * answers exactly as presearcher.verify() answers for the form it was compiled from.
 */
enum { P_CONST, P_KEY, P_ANY, P_KEYS, P_BOOL, P_RANGE, P_PHRASE, P_PATTERN, P_GUARD, P_CALL, P_ANY_PHRASE };
enum { PATTERN_PREFIX = 0, PATTERN_GLOB = 1 };

typedef struct Node {
    int32_t kind;
    int32_t value;          /* CONST: the answer; KEY: key id; BOOL: need; PATTERN: mode; GUARD, ANY_PHRASE: escape key id */
    int32_t *keys;          /* ANY: [n, ids..]; KEYS, BOOL: [n_req, n_forb, n_groups, ...]; GUARD: [n_all, ids.., n_any, ids..] */
    struct Node **children; /* BOOL: required, forbidden, optional; GUARD: the inner check */
    int32_t nreq, nforb, nopt;
    int32_t any_field;      /* PATTERN: on every field (text takes the lowercased pattern) */
    long long low, high;    /* RANGE: inclusive bounds */
    PyObject *a, *b, *c, *d, *e, *f;  /* owned: RANGE field, low, high; PHRASE field, tokens;
                                       * PATTERN (field, start), start, lower_start, value, lower_value;
                                       * ANY_PHRASE -, tokens; CALL, ANY_PHRASE callable */
} Node;

/* A keys-only conjunction (P_KEYS): Node's first three members, then its block, so that a
 * candidate's kind and keys share a cache line.  Most candidates are such conjunctions, and
 * loading a node was most of the core's time at 100k queries (perf annotate). */
typedef struct {
    int32_t kind;
    int32_t value;
    int32_t *keys;          /* = block */
    int32_t block[];
} KeysNode;


/* A document's first few pattern tests read its terms directly; only past this many is its prefix
 * view (every term of 3+ characters, sorted, by field and of all text and keyword fields) made.
 * At 1,000 queries nearly every document is a candidate of a pattern or two, and the view was a
 * tenth of matching it; at 100,000 a document meets hundreds and the view pays. */
#define DIRECT_PATTERNS 4

static void node_free(Node *node) {
    if (!node) return;
    if (node->kind == P_KEYS) {  /* a KeysNode: one allocation */
        free(node);
        return;
    }
    if (node->children) {
        int32_t n = node->nreq + node->nforb + node->nopt;
        for (int32_t i = 0; i < n; i++) node_free(node->children[i]);
        free(node->children);
    }
    free(node->keys);
    Py_XDECREF(node->a); Py_XDECREF(node->b); Py_XDECREF(node->c);
    Py_XDECREF(node->d); Py_XDECREF(node->e); Py_XDECREF(node->f);
    free(node);
}

static void view_release(DocView *view) {
    Py_CLEAR(view->doc);
    view->patterns = 0;
    Py_CLEAR(view->keywords);
    Py_CLEAR(view->tokens);
    Py_CLEAR(view->numbers);
    Py_CLEAR(view->prefixes);
}

static PyObject *view_attr(DocView *view, PyObject **slot, const char *name) {
    if (*slot == NULL) *slot = PyObject_GetAttrString(view->doc, name);
    return *slot;
}

/* The key ids of a sequence, appended to `block` (after their count if `counted`). */
static int block_ids(Core *self, IntList *block, PyObject *seq, int counted) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of key ids");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (counted && list_append(block, (int32_t)n)) { Py_DECREF(fast); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        long key = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if ((key == -1 && PyErr_Occurred()) || non_negative(key, "key id") || grow_keys(self, (int32_t)key + 1)
            || list_append(block, (int32_t)key)) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* [n_req, n_forb, n_groups, req.., forb.., (len, ids..)..] as holds() reads it. */
static int32_t *conjunction_block(Core *self, PyObject *req, PyObject *forb, PyObject *groups, Py_ssize_t *length) {
    IntList block = {NULL, 0, 0};
    Py_ssize_t nreq = PySequence_Size(req), nforb = PySequence_Size(forb), ngroups = PySequence_Size(groups);
    if (nreq < 0 || nforb < 0 || ngroups < 0) return NULL;
    if (list_append(&block, (int32_t)nreq) || list_append(&block, (int32_t)nforb) || list_append(&block, (int32_t)ngroups)
        || block_ids(self, &block, req, 0) || block_ids(self, &block, forb, 0))
        goto fail;
    for (Py_ssize_t g = 0; g < ngroups; g++) {
        PyObject *group = PySequence_GetItem(groups, g);
        if (!group) goto fail;
        int failed = block_ids(self, &block, group, 1);
        Py_DECREF(group);
        if (failed) goto fail;
    }
    if (length) *length = block.len;
    return block.data;
fail:
    free(block.data);
    return NULL;
}

static Node *node_build(Core *self, PyObject *desc, int depth);

static int build_children(Core *self, Node *node, PyObject *req, PyObject *forb, PyObject *opt, int depth) {
    PyObject *lists[3] = {req, forb, opt};
    Py_ssize_t sizes[3];
    for (int l = 0; l < 3; l++) {
        sizes[l] = PySequence_Size(lists[l]);
        if (sizes[l] < 0) return -1;
    }
    Py_ssize_t total = sizes[0] + sizes[1] + sizes[2];
    node->children = calloc(total ? total : 1, sizeof(Node *));
    if (!node->children) { PyErr_NoMemory(); return -1; }
    Py_ssize_t at = 0;
    for (int l = 0; l < 3; l++) {
        for (Py_ssize_t i = 0; i < sizes[l]; i++) {
            PyObject *child = PySequence_GetItem(lists[l], i);
            if (!child) return -1;
            node->children[at] = node_build(self, child, depth + 1);
            Py_DECREF(child);
            if (!node->children[at]) return -1;
            at++;
            if (l == 0) node->nreq++; else if (l == 1) node->nforb++; else node->nopt++;
        }
    }
    return 0;
}

static int hold(PyObject **slot, PyObject *value) {
    Py_INCREF(value);
    *slot = value;
    return 0;
}

/* A Node from a tagged tuple (see native_program in programs.py). */
static Node *node_build(Core *self, PyObject *desc, int depth) {
    if (depth > 1000) { PyErr_SetString(PyExc_ValueError, "program nested too deeply"); return NULL; }
    if (!PyTuple_Check(desc) || PyTuple_GET_SIZE(desc) < 2) {
        PyErr_SetString(PyExc_TypeError, "a program node is a tuple (tag, ...)");
        return NULL;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(desc, 0));
    if (kind == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t size = PyTuple_GET_SIZE(desc);
    Node *node = calloc(1, sizeof(Node));
    if (!node) { PyErr_NoMemory(); return NULL; }
    node->kind = (int32_t)kind;
    PyObject **item = &PyTuple_GET_ITEM(desc, 0);
#define NEED(n) if (size != (n)) { PyErr_Format(PyExc_ValueError, "program node %ld takes %d items", kind, (n)); goto fail; }
    switch (kind) {
    case P_CONST: {
        NEED(2);
        int truth = PyObject_IsTrue(item[1]);
        if (truth < 0) goto fail;
        node->value = truth;
        break;
    }
    case P_KEY: {
        NEED(2);
        long key = PyLong_AsLong(item[1]);
        if ((key == -1 && PyErr_Occurred()) || non_negative(key, "key id") || grow_keys(self, (int32_t)key + 1)) goto fail;
        node->value = (int32_t)key;
        break;
    }
    case P_ANY: {
        NEED(2);
        IntList block = {NULL, 0, 0};
        if (block_ids(self, &block, item[1], 1)) { free(block.data); goto fail; }
        node->keys = block.data;
        break;
    }
    case P_KEYS: {
        NEED(4);
        Py_ssize_t length;
        int32_t *block = conjunction_block(self, item[1], item[2], item[3], &length);
        if (!block) goto fail;
        KeysNode *keys_node = malloc(sizeof(KeysNode) + sizeof(int32_t) * length);
        if (!keys_node) { free(block); PyErr_NoMemory(); goto fail; }
        keys_node->kind = P_KEYS;
        keys_node->value = 0;
        keys_node->keys = keys_node->block;
        memcpy(keys_node->block, block, sizeof(int32_t) * length);
        free(block);
        free(node);
        return (Node *)keys_node;
    }
    case P_BOOL: {
        NEED(8);
        if (!(node->keys = conjunction_block(self, item[1], item[2], item[3], NULL))) goto fail;
        if (build_children(self, node, item[4], item[5], item[6], depth)) goto fail;
        long need = PyLong_AsLong(item[7]);
        if ((need == -1 && PyErr_Occurred()) || non_negative(need, "need")) goto fail;
        node->value = (int32_t)need;
        break;
    }
    case P_RANGE: {
        NEED(4);
        node->low = PyLong_AsLongLong(item[2]);
        if (node->low == -1 && PyErr_Occurred()) goto fail;
        node->high = PyLong_AsLongLong(item[3]);
        if (node->high == -1 && PyErr_Occurred()) goto fail;
        hold(&node->a, item[1]); hold(&node->b, item[2]); hold(&node->c, item[3]);
        break;
    }
    case P_PHRASE:
        NEED(3);
        if (!PyTuple_Check(item[2]) || PyTuple_GET_SIZE(item[2]) < 1) {
            PyErr_SetString(PyExc_TypeError, "a phrase's tokens are a non-empty tuple");
            goto fail;
        }
        hold(&node->a, item[1]); hold(&node->b, item[2]);
        break;
    case P_PATTERN: {
        NEED(8);
        long mode = PyLong_AsLong(item[1]);
        if (mode == -1 && PyErr_Occurred()) goto fail;
        node->value = (int32_t)mode;
        node->any_field = PyObject_IsTrue(item[2]);
        for (int i = 3; i < 8; i++)
            if (!PyUnicode_Check(item[i])) {
                PyErr_SetString(PyExc_TypeError, "a pattern's parts are strings");
                goto fail;
            }
        hold(&node->a, item[3]); hold(&node->b, item[4]); hold(&node->c, item[5]);
        hold(&node->d, item[6]); hold(&node->e, item[7]);
        break;
    }
    case P_GUARD: {
        NEED(5);
        long escape = PyLong_AsLong(item[1]);
        if ((escape == -1 && PyErr_Occurred()) || non_negative(escape, "key id") || grow_keys(self, (int32_t)escape + 1)) goto fail;
        node->value = (int32_t)escape;
        IntList block = {NULL, 0, 0};
        if (block_ids(self, &block, item[2], 1) || block_ids(self, &block, item[3], 1)) { free(block.data); goto fail; }
        node->keys = block.data;
        node->children = calloc(1, sizeof(Node *));
        if (!node->children) { PyErr_NoMemory(); goto fail; }
        node->children[0] = node_build(self, item[4], depth + 1);
        if (!node->children[0]) goto fail;
        node->nreq = 1;
        break;
    }
    case P_ANY_PHRASE: {
        NEED(4);
        long escape = PyLong_AsLong(item[1]);
        if ((escape == -1 && PyErr_Occurred()) || non_negative(escape, "key id") || grow_keys(self, (int32_t)escape + 1)) goto fail;
        node->value = (int32_t)escape;
        if (!PyTuple_Check(item[2]) || PyTuple_GET_SIZE(item[2]) < 1 || !PyCallable_Check(item[3])) {
            PyErr_SetString(PyExc_TypeError, "an any-field phrase is (escape key id, tokens, check)");
            goto fail;
        }
        hold(&node->b, item[2]); hold(&node->f, item[3]);
        break;
    }
    case P_CALL:
        NEED(2);
        if (!PyCallable_Check(item[1])) { PyErr_SetString(PyExc_TypeError, "a call node holds a callable"); goto fail; }
        hold(&node->f, item[1]);
        break;
    default:
        PyErr_Format(PyExc_ValueError, "unknown program node %ld", kind);
        goto fail;
    }
#undef NEED
    return node;
fail:
    node_free(node);
    return NULL;
}

/* Whether `term` matches a Lucene wildcard of literal characters, `?` (one character) and `*` (any
 * run): the greedy match with one backtrack point, linear in practice and exact for these three. */
static int glob_match(PyObject *term, PyObject *pattern) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(term), m = PyUnicode_GET_LENGTH(pattern);
    int tk = PyUnicode_KIND(term), pk = PyUnicode_KIND(pattern);
    const void *td = PyUnicode_DATA(term), *pd = PyUnicode_DATA(pattern);
    Py_ssize_t t = 0, p = 0, star = -1, mark = 0;
    while (t < n) {
        if (p < m) {
            Py_UCS4 c = PyUnicode_READ(pk, pd, p);
            if (c == '*') { star = p++; mark = t; continue; }
            if (c == '?' || c == PyUnicode_READ(tk, td, t)) { p++; t++; continue; }
        }
        if (star < 0) return 0;
        p = star + 1;
        t = ++mark;
    }
    while (p < m && PyUnicode_READ(pk, pd, p) == '*') p++;
    return p == m;
}

/* 1 if `term` passes the pattern test (a prefix, or a glob of "*", "?" and literals), 0 if not, -1 on error. */
static int pattern_test(const Node *node, PyObject *term, PyObject *value) {
    if (!PyUnicode_Check(term)) { PyErr_SetString(PyExc_TypeError, "a document's terms are strings"); return -1; }
    if (node->value == PATTERN_PREFIX) {
        Py_ssize_t r = PyUnicode_Tailmatch(term, value, 0, PY_SSIZE_T_MAX, -1);
        return r < 0 ? -1 : (int)r;
    }
    return glob_match(term, value);
}

/* 1 if one of `terms` (a list of str, or NULL) passes the pattern test, 0 if none, -1 on error. */
static int pattern_terms(const Node *node, PyObject *terms, PyObject *value) {
    if (terms == NULL) return 0;
    if (!PyList_Check(terms)) { PyErr_SetString(PyExc_TypeError, "keyword values are lists"); return -1; }
    Py_ssize_t n = PyList_GET_SIZE(terms);
    for (Py_ssize_t i = 0; i < n; i++) {
        int ok = pattern_test(node, PyList_GET_ITEM(terms, i), value);
        if (ok) return ok;
    }
    return 0;
}

/* 1 if one of the sorted `terms` (a list of str, or NULL) that start with `start` passes the pattern test,
 * 0 if none, -1 on error: a binary search to the first of them, then their run (fields.any_with_start). */
static int pattern_sorted(const Node *node, PyObject *terms, PyObject *start, PyObject *value) {
    if (terms == NULL) return 0;
    if (!PyList_Check(terms)) { PyErr_SetString(PyExc_TypeError, "prefix_view lists terms"); return -1; }
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(terms);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *term = PyList_GET_ITEM(terms, mid);
        if (!PyUnicode_Check(term)) { PyErr_SetString(PyExc_TypeError, "prefix_view terms are strings"); return -1; }
        int c = PyUnicode_Compare(term, start);
        if (c == -1 && PyErr_Occurred()) return -1;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    for (Py_ssize_t i = lo; i < PyList_GET_SIZE(terms); i++) {
        PyObject *term = PyList_GET_ITEM(terms, i);
        Py_ssize_t starts = PyUnicode_Tailmatch(term, start, 0, PY_SSIZE_T_MAX, -1);
        if (starts < 0) return -1;
        if (!starts) return 0;  /* past the run */
        int ok = pattern_test(node, term, value);
        if (ok) return ok;
    }
    return 0;
}

static int dict_get(PyObject *dict, PyObject *key, PyObject **out) {
    if (!PyDict_Check(dict)) { PyErr_SetString(PyExc_TypeError, "expected a dict in the document's analysis"); return -1; }
    *out = PyDict_GetItemWithError(dict, key);  /* borrowed */
    return (*out == NULL && PyErr_Occurred()) ? -1 : 0;
}

/* 1 if a term of `postings` (token -> positions, or NULL) passes the pattern test, 0 if none, -1 on error. */
static int pattern_tokens(const Node *node, PyObject *postings, PyObject *value) {
    if (postings == NULL) return 0;
    if (!PyDict_Check(postings)) { PyErr_SetString(PyExc_TypeError, "expected a dict in the document's analysis"); return -1; }
    Py_ssize_t pos = 0;
    PyObject *term, *positions;
    while (PyDict_Next(postings, &pos, &term, &positions)) {  /* no Python code runs: the dict holds still */
        int ok = pattern_test(node, term, value);
        if (ok) return ok;
    }
    return 0;
}

/* eval_pattern without the prefix view: every term of the field (of every field for ANY_FIELD) is
 * tested.  The same answer: the view holds the terms of 3+ characters, and a term passing the test
 * starts with the pattern's literal start of 3+ characters, which the view's search looks for. */
static int eval_pattern_direct(const Node *node, DocView *view) {
    PyObject *tokens = view_attr(view, &view->tokens, "tokens");
    PyObject *keywords = tokens ? view_attr(view, &view->keywords, "keywords") : NULL;
    if (!keywords) return -1;
    if (!PyDict_Check(tokens) || !PyDict_Check(keywords)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict in the document's analysis");
        return -1;
    }
    PyObject *field, *terms;
    if (node->any_field) {  /* text fields take the lowercased pattern, keyword fields the pattern */
        Py_ssize_t pos = 0;
        while (PyDict_Next(tokens, &pos, &field, &terms)) {
            int found = pattern_tokens(node, terms, node->e);
            if (found) return found;
        }
        pos = 0;
        while (PyDict_Next(keywords, &pos, &field, &terms)) {
            int found = pattern_terms(node, terms, node->d);
            if (found) return found;
        }
        return 0;
    }
    if (dict_get(tokens, node->a, &terms)) return -1;
    int found = pattern_tokens(node, terms, node->d);
    if (found) return found;
    if (dict_get(keywords, node->a, &terms)) return -1;
    return pattern_terms(node, terms, node->d);
}

static int eval_pattern(const Node *node, DocView *view) {
    if (view->prefixes == NULL && view->patterns < DIRECT_PATTERNS) {
        view->patterns++;
        return eval_pattern_direct(node, view);
    }
    if (view->prefixes == NULL) {
        view->prefixes = PyObject_CallMethod(view->doc, "prefix_view", NULL);
        if (!view->prefixes) return -1;
        if (!PyTuple_Check(view->prefixes) || PyTuple_GET_SIZE(view->prefixes) != 3) {
            PyErr_SetString(PyExc_TypeError, "prefix_view() is a triple");
            return -1;
        }
    }
    PyObject *by_field = PyTuple_GET_ITEM(view->prefixes, 0);
    PyObject *text = PyTuple_GET_ITEM(view->prefixes, 1);
    PyObject *keyword = PyTuple_GET_ITEM(view->prefixes, 2);
    if (node->any_field) {
        int found = pattern_sorted(node, text, node->c, node->e);
        if (found) return found;
        return pattern_sorted(node, keyword, node->b, node->d);
    }
    PyObject *terms;
    if (dict_get(by_field, node->a, &terms)) return -1;
    return pattern_sorted(node, terms, node->b, node->d);
}

static int eval_range(const Node *node, DocView *view) {
    PyObject *numbers = view_attr(view, &view->numbers, "numbers"), *values;
    if (!numbers || dict_get(numbers, node->a, &values)) return -1;
    if (values == NULL) return 0;
    if (!PyList_Check(values)) { PyErr_SetString(PyExc_TypeError, "numbers are lists"); return -1; }
    Py_ssize_t n = PyList_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (PyLong_CheckExact(v)) {
            int overflow;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (x == -1 && PyErr_Occurred()) return -1;
            if (!overflow && node->low <= x && x <= node->high) return 1;
        } else {  /* as Python compares mixed numbers */
            int ge = PyObject_RichCompareBool(v, node->b, Py_GE);
            if (ge < 0) return -1;
            if (!ge) continue;
            int le = PyObject_RichCompareBool(v, node->c, Py_LE);
            if (le < 0) return -1;
            if (le) return 1;
        }
    }
    return 0;
}

static int list_has(PyObject *positions, long wanted) {
    Py_ssize_t n = PyList_GET_SIZE(positions);
    for (Py_ssize_t i = 0; i < n; i++) {
        long p = PyLong_AsLong(PyList_GET_ITEM(positions, i));
        if (p == -1 && PyErr_Occurred()) return -1;
        if (p == wanted) return 1;
    }
    return 0;
}

/* Whether `postings` (token -> positions of one text field) hold the tokens in a row (slop 0). */
static int phrase_at(PyObject *postings, PyObject *tokens) {
    Py_ssize_t k = PyTuple_GET_SIZE(tokens);
    PyObject *lists[16];
    PyObject **positions = k <= 16 ? lists : malloc(sizeof(PyObject *) * k);
    if (!positions) { PyErr_NoMemory(); return -1; }
    int result = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        if (dict_get(postings, PyTuple_GET_ITEM(tokens, i), &positions[i])) { result = -1; goto done; }
        if (positions[i] == NULL) goto done;
        if (!PyList_Check(positions[i])) { PyErr_SetString(PyExc_TypeError, "positions are lists"); result = -1; goto done; }
    }
    Py_ssize_t n = PyList_GET_SIZE(positions[0]);
    for (Py_ssize_t j = 0; j < n && result == 0; j++) {
        long p = PyLong_AsLong(PyList_GET_ITEM(positions[0], j));
        if (p == -1 && PyErr_Occurred()) { result = -1; goto done; }
        int all = 1;
        for (Py_ssize_t i = 1; i < k; i++) {
            int has = list_has(positions[i], p + (long)i);
            if (has < 0) { result = -1; goto done; }
            if (!has) { all = 0; break; }
        }
        if (all) result = 1;
    }
done:
    if (positions != lists) free(positions);
    return result;
}

/* An exact phrase (slop 0) on one text field. */
static int eval_phrase(const Node *node, DocView *view) {
    PyObject *tokens = view_attr(view, &view->tokens, "tokens"), *postings;
    if (!tokens || dict_get(tokens, node->a, &postings)) return -1;
    return postings == NULL ? 0 : phrase_at(postings, node->b);
}

/* An exact phrase on every field: in a row in some text field, else (only if the document holds
 * the phrase's text as a `*` key, as it does for a keyword value) whatever the Python check says. */
static int eval_any_phrase(const Core *self, const Node *node, DocView *view) {
    PyObject *tokens = view_attr(view, &view->tokens, "tokens");
    if (!tokens) return -1;
    if (!PyDict_Check(tokens)) { PyErr_SetString(PyExc_TypeError, "tokens is a dict"); return -1; }
    Py_ssize_t pos = 0;
    PyObject *path, *postings;
    while (PyDict_Next(tokens, &pos, &path, &postings)) {
        int r = phrase_at(postings, node->b);
        if (r) return r;
    }
    if (!held(self, node->value)) return 0;
    PyObject *answer = PyObject_CallOneArg(node->f, view->doc);
    if (!answer) return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

static int eval_node(const Core *self, const Node *node, DocView *view);

static int eval_bool(const Core *self, const Node *node, DocView *view) {
    if (!holds(self, node->keys)) return 0;
    Node *const *child = node->children;
    for (int32_t i = 0; i < node->nreq; i++) {
        int r = eval_node(self, *child++, view);
        if (r <= 0) return r;
    }
    for (int32_t i = 0; i < node->nforb; i++) {
        int r = eval_node(self, *child++, view);
        if (r != 0) return r < 0 ? r : 0;
    }
    int32_t need = node->value;
    if (!need) return 1;
    int32_t hits = 0, misses = 0, total = node->nopt;
    for (int32_t i = 0; i < total; i++) {
        int r = eval_node(self, *child++, view);
        if (r < 0) return r;
        if (r) {
            if (++hits >= need) return 1;
        } else if (total - ++misses < need) {
            return 0;
        }
    }
    return 0;
}

static int eval_guard(const Core *self, const Node *node, DocView *view) {
    if (!held(self, node->value)) {
        const int32_t *p = node->keys;
        int32_t nall = *p++;
        for (int32_t i = 0; i < nall; i++)
            if (!held(self, p[i])) return 0;
        p += nall;
        int32_t nany = *p++;
        if (nany) {
            int found = 0;
            for (int32_t i = 0; i < nany; i++)
                if (held(self, p[i])) { found = 1; break; }
            if (!found) return 0;
        }
    }
    return eval_node(self, node->children[0], view);
}

/* 1 if the document satisfies the node, 0 if not, -1 with an exception set. */
static int eval_node(const Core *self, const Node *node, DocView *view) {
    switch (node->kind) {
    case P_CONST:
        return node->value;
    case P_KEY:
        return held(self, node->value);
    case P_ANY: {
        int32_t n = node->keys[0];
        for (int32_t i = 1; i <= n; i++)
            if (held(self, node->keys[i])) return 1;
        return 0;
    }
    case P_KEYS:
        return holds(self, node->keys);
    case P_BOOL:
        return eval_bool(self, node, view);
    case P_RANGE:
        return eval_range(node, view);
    case P_PHRASE:
        return eval_phrase(node, view);
    case P_PATTERN:
        return eval_pattern(node, view);
    case P_GUARD:
        return eval_guard(self, node, view);
    case P_ANY_PHRASE:
        return eval_any_phrase(self, node, view);
    case P_CALL: {
        PyObject *answer = PyObject_CallOneArg(node->f, view->doc);
        if (!answer) return -1;
        int truth = PyObject_IsTrue(answer);
        Py_DECREF(answer);
        return truth;
    }
    }
    PyErr_SetString(PyExc_SystemError, "corrupt program node");
    return -1;
}

#define PREFETCH 8

static int append_number(PyObject *list, int32_t number) {
    PyObject *value = PyLong_FromLong(number);
    if (!value) return -1;
    int failed = PyList_Append(list, value);
    Py_DECREF(value);
    return failed;
}

static RangeField *range_field(Core *self, PyObject *field, int create) {
    for (int32_t i = 0; i < self->nranges; i++) {
        int eq = PyUnicode_Compare(self->ranges[i].field, field);
        if (eq == -1 && PyErr_Occurred()) return NULL;
        if (eq == 0) return &self->ranges[i];
    }
    if (!create) return NULL;
    if (self->nranges == self->ranges_cap) {
        int32_t cap = self->ranges_cap ? self->ranges_cap * 2 : 4;
        if (resize(&self->ranges, sizeof(RangeField) * cap)) return NULL;
        self->ranges_cap = cap;
    }
    RangeField *f = &self->ranges[self->nranges++];
    memset(f, 0, sizeof(RangeField));
    Py_INCREF(field);
    f->field = field;
    return f;
}

/* add_range(field, number, low, high, exact): index query `number` under a range of a long field. */
static PyObject *Core_add_range(Core *self, PyObject *args) {
    PyObject *field;
    long number;
    long long low, high;
    int exact;
    if (!PyArg_ParseTuple(args, "UlLLp", &field, &number, &low, &high, &exact)) return NULL;
    if (non_negative(number, "query number") || grow_queries(self, (int32_t)number + 1)) return NULL;
    RangeField *f = range_field(self, field, 1);
    if (!f) return NULL;
    if (f->len == f->cap) {
        int32_t cap = f->cap ? f->cap * 2 : 64;
        if (resize(&f->low, sizeof(long long) * cap) || resize(&f->high, sizeof(long long) * cap)
            || resize(&f->number, sizeof(int32_t) * cap) || resize(&f->exact, cap))
            return NULL;
        f->cap = cap;
    }
    f->low[f->len] = low;
    f->high[f->len] = high;
    f->number[f->len] = (int32_t)number;
    f->exact[f->len] = (char)exact;
    f->len++;
    Py_RETURN_NONE;
}

/* remove_range(field, number) -> bool. */
static PyObject *Core_remove_range(Core *self, PyObject *args) {
    PyObject *field;
    long number;
    if (!PyArg_ParseTuple(args, "Ul", &field, &number)) return NULL;
    RangeField *f = range_field(self, field, 0);
    if (!f) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    for (int32_t i = 0; i < f->len; i++) {
        if (f->number[i] == number) {  /* the last entry takes its place: order does not matter */
            f->len--;
            f->low[i] = f->low[f->len];
            f->high[i] = f->high[f->len];
            f->number[i] = f->number[f->len];
            f->exact[i] = f->exact[f->len];
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}


/* Verify candidate `number` for document `i` of the batch (its bit is self->bit): a match goes to
 * found[i], a query without a program to `to_verify`.  -1 on error. */
static int consider(Core *self, int32_t number, int32_t i, PyObject *to_verify) {
    const Node *program = self->slots[number].program;
    if (program == NULL) return append_number(to_verify, number);
    int r = eval_node(self, program, &self->views[i]);
    if (r < 0) return -1;
    return r ? list_append(&self->found[i], number) : 0;
}

/* The queries indexed under a range holding one of document i's values of that field.  (A query
 * is indexed under one range or under keys, never both: no candidate comes twice.) */
static int scan_ranges(Core *self, int32_t i, PyObject *to_verify) {
    if (!self->nranges) return 0;
    DocView *view = &self->views[i];
    PyObject *numbers = view_attr(view, &view->numbers, "numbers");
    if (!numbers) return -1;
    for (int32_t r = 0; r < self->nranges; r++) {
        const RangeField *f = &self->ranges[r];
        PyObject *values;
        if (dict_get(numbers, f->field, &values)) return -1;
        if (values == NULL) continue;
        if (!PyList_Check(values)) { PyErr_SetString(PyExc_TypeError, "numbers are lists"); return -1; }
        Py_ssize_t n = PyList_GET_SIZE(values);
        for (Py_ssize_t v_at = 0; v_at < n; v_at++) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(PyList_GET_ITEM(values, v_at), &overflow);
            if (v == -1 && PyErr_Occurred()) return -1;
            if (overflow) continue;  /* a long field holds no value outside 64 bits */
            for (int32_t j = 0; j < f->len; j++) {
                if (f->low[j] > v || v > f->high[j]) continue;
                int32_t number = f->number[j];
                if (f->exact[j]) {
                    if (list_append(&self->found[i], number)) return -1;  /* a repeat is dropped by answer() */
                } else if (consider(self, number, i, to_verify)) {
                    return -1;
                }
            }
        }
    }
    return 0;
}

/* set_program(number, program): how query `number` is verified (None: in Python). */
static PyObject *Core_set_program(Core *self, PyObject *args) {
    long number;
    PyObject *desc;
    if (!PyArg_ParseTuple(args, "lO", &number, &desc)) return NULL;
    if (non_negative(number, "query number") || grow_queries(self, (int32_t)number + 1)) return NULL;
    Node *program = NULL;
    if (desc != Py_None && !(program = node_build(self, desc, 0))) return NULL;
    node_free(self->slots[number].program);
    self->slots[number].program = program;
    Py_RETURN_NONE;
}


/* Forget the previous batch: its keys' bits, its documents, its unanswered matches. */
static void batch_release(Core *self) {
    for (int32_t i = 0; i < self->held.len; i++) self->key_mask[self->held.data[i]] = 0;
    self->held.len = 0;
    for (int32_t i = 0; i < self->ndocs; i++) {
        view_release(&self->views[i]);
        self->found[i].len = 0;
    }
    self->ndocs = 0;
}

/* Document i's keys (strings) looked up in key_ids (str -> key id): its bit set in each key's mask. */
static int batch_keys(Core *self, int32_t i, PyObject *doc_keys, PyObject *key_ids) {
    const uint64_t bit = (uint64_t)1 << i;
    PyObject *iterator = PyObject_GetIter(doc_keys);
    if (!iterator) return -1;
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        PyObject *id = PyDict_GetItemWithError(key_ids, item);  /* borrowed */
        Py_DECREF(item);
        if (id == NULL) {
            if (PyErr_Occurred()) { Py_DECREF(iterator); return -1; }
            continue;  /* a key no stored query uses */
        }
        long key = PyLong_AsLong(id);
        if (key == -1 && PyErr_Occurred()) { Py_DECREF(iterator); return -1; }
        if (key < 0 || key >= self->nkeys) continue;
        uint64_t *mask = &self->key_mask[key];
        if (*mask & bit) continue;  /* the same key twice */
        if (!*mask && list_append(&self->held, (int32_t)key)) { Py_DECREF(iterator); return -1; }
        *mask |= bit;
        self->df[key] += self->counted[key];  /* the document frequencies re-keying reads, counted on the way */
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

/* The candidates of the batch's documents: exact ones kept as matches, the others (each once, with
 * the mask of the documents it is a candidate of) in self->touched. */
static int batch_select(Core *self) {
    const uint32_t stamp = self->stamp;
    self->touched.len = 0;
    for (int32_t h = 0; h < self->held.len; h++) {
        int32_t key = self->held.data[h];
        const uint64_t mask = self->key_mask[key];
        const IntList *exact = &self->exact[key];
        for (int32_t j = 0; j < exact->len; j++) {
            for (uint64_t bits = mask; bits; bits &= bits - 1)  /* a repeat is dropped by answer() */
                if (list_append(&self->found[__builtin_ctzll(bits)], exact->data[j])) return -1;
        }
        const IntList *verify = &self->verify[key];
        const int32_t *numbers = verify->data;
        const int32_t len = verify->len;
        for (int32_t j = 0; j < len; j++) {
            if (j + 2 * PREFETCH < len) __builtin_prefetch(&self->slots[numbers[j + 2 * PREFETCH]], 1);
            QuerySlot *slot = &self->slots[numbers[j]];
            if (slot->stamp != stamp) {
                slot->stamp = stamp;
                slot->mask = mask;
                if (list_append(&self->touched, numbers[j])) return -1;
            } else {
                slot->mask |= mask;
            }
        }
    }
    return 0;
}

/* Verify every touched candidate for the documents it is a candidate of: a conjunction of keys for
 * all of them at once, any other program document by document. */
static int batch_verify(Core *self, PyObject *const *to_verify) {
    const int32_t *numbers = self->touched.data;
    const int32_t len = self->touched.len;
    for (int32_t j = 0; j < len; j++) {
        /* Loads are the cost: the slot of a candidate well ahead, the node of one a few ahead. */
        if (j + 2 * PREFETCH < len) __builtin_prefetch(&self->slots[numbers[j + 2 * PREFETCH]]);
        if (j + PREFETCH < len) {
            const Node *ahead = self->slots[numbers[j + PREFETCH]].program;
            if (ahead) __builtin_prefetch(ahead);
        }
        const int32_t number = numbers[j];
        const QuerySlot *slot = &self->slots[number];
        const Node *program = slot->program;
        uint64_t mask = slot->mask;
        if (program == NULL) {
            for (; mask; mask &= mask - 1)
                if (append_number(to_verify[__builtin_ctzll(mask)], number)) return -1;
            continue;
        }
        if (program->kind == P_KEYS || program->kind == P_BOOL) {  /* a bool's own keys come first */
            mask = holds_mask(self, program->keys, mask);
            if (program->kind == P_KEYS) {
                for (; mask; mask &= mask - 1)
                    if (list_append(&self->found[__builtin_ctzll(mask)], number)) return -1;
                continue;
            }
        }
        for (; mask; mask &= mask - 1) {
            int32_t i = __builtin_ctzll(mask);
            self->bit = (uint64_t)1 << i;
            int r = eval_node(self, program, &self->views[i]);
            if (r < 0) return -1;
            if (r && list_append(&self->found[i], number)) return -1;
        }
    }
    return 0;
}

/* batch(doc_keys_list, key_ids, docs) -> [to_verify, ...]: starts a batch of up to 64 documents (each
 * its set of keys and its analysis).  The queries their keys and values select are verified here and
 * the matches kept for answer(); per document, those without a program are returned for Python.
 * The batch lasts until the next one: check() and answer() name its documents by position. */
static PyObject *Core_batch(Core *self, PyObject *args) {
    PyObject *keys_list, *key_ids, *docs;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyList_Type, &keys_list, &PyDict_Type, &key_ids, &PyList_Type, &docs)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(docs);
    if (n != PyList_GET_SIZE(keys_list) || n > BATCH) {
        return PyErr_Format(PyExc_ValueError, "a batch is up to %d documents, each with its keys", BATCH);
    }
    batch_release(self);
    if (++self->stamp == 0) {  /* wrapped after 2^32 batches: forget every old stamp */
        for (int32_t q = 0; q < self->nqueries; q++) self->slots[q].stamp = 0;
        self->stamp = 1;
    }
    PyObject *answer = PyList_New(n);
    if (!answer) return NULL;
    PyObject *to_verify[BATCH];
    self->ndocs = (int32_t)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        DocView *view = &self->views[i];
        view->doc = PyList_GET_ITEM(docs, i);
        Py_INCREF(view->doc);
        if (!(to_verify[i] = PyList_New(0))) goto fail;
        PyList_SET_ITEM(answer, i, to_verify[i]);
        if (batch_keys(self, (int32_t)i, PyList_GET_ITEM(keys_list, i), key_ids)) goto fail;
    }
    if (batch_select(self) || batch_verify(self, to_verify)) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        self->bit = (uint64_t)1 << i;
        if (scan_ranges(self, (int32_t)i, to_verify[i])) goto fail;
    }
    return answer;
fail:
    Py_DECREF(answer);
    batch_release(self);
    return NULL;
}

/* candidates(doc_keys, key_ids, doc) -> to_verify: batch() of one document. */
static PyObject *Core_candidates(Core *self, PyObject *args) {
    PyObject *doc_keys, *key_ids, *doc;
    if (!PyArg_ParseTuple(args, "OO!O", &doc_keys, &PyDict_Type, &key_ids, &doc)) return NULL;
    PyObject *batch = Py_BuildValue("([O]O[O])", doc_keys, key_ids, doc);
    if (!batch) return NULL;
    PyObject *lists = Core_batch(self, batch);
    Py_DECREF(batch);
    if (!lists) return NULL;
    PyObject *to_verify = PyList_GET_ITEM(lists, 0);
    Py_INCREF(to_verify);
    Py_DECREF(lists);
    return to_verify;
}

static int batch_position(Core *self, int position) {
    if (position < 0 || position >= self->ndocs) {
        PyErr_Format(PyExc_IndexError, "document %d is not in the current batch", position);
        return -1;
    }
    return 0;
}

/* check(numbers, position=0) -> to_verify: verify further candidates of a document of the current
 * batch (the always-check list); as in batch(), matches are kept. */
static PyObject *Core_check(Core *self, PyObject *args) {
    PyObject *numbers;
    int position = 0;
    if (!PyArg_ParseTuple(args, "O|i", &numbers, &position) || batch_position(self, position)) return NULL;
    if (self->views[position].doc == NULL)
        return PyErr_Format(PyExc_IndexError, "document %d of the batch was answered already", position);
    PyObject *fast = PySequence_Fast(numbers, "numbers must be a sequence of query numbers");
    if (!fast) return NULL;
    PyObject *to_verify = PyList_New(0);
    if (!to_verify) { Py_DECREF(fast); return NULL; }
    self->bit = (uint64_t)1 << position;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        long number = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if ((number == -1 && PyErr_Occurred()) || non_negative(number, "query number")) goto fail;
        if (number >= self->nqueries) {
            if (append_number(to_verify, (int32_t)number)) goto fail;
            continue;
        }
        if (consider(self, (int32_t)number, position, to_verify)) goto fail;
    }
    Py_DECREF(fast);
    return to_verify;
fail:
    Py_DECREF(fast);
    Py_DECREF(to_verify);
    return NULL;
}

/* answer(verified, ids, position=0) -> the ids of a document's matches in registration (number)
 * order: those kept by batch() and check() and the numbers Python verified, each number mapped
 * through ids.  The numbers are ordered through a bit per query (cheaper than sorting ~1,400).
 * This ends the document: its analysis is let go, and check() may not name it again. */
static PyObject *Core_answer(Core *self, PyObject *args) {
    PyObject *verified, *ids;
    int position = 0;
    if (!PyArg_ParseTuple(args, "OO!|i", &verified, &PyList_Type, &ids, &position) || batch_position(self, position))
        return NULL;
    IntList *found = &self->found[position];
    PyObject *fast = PySequence_Fast(verified, "verified must be a sequence of query numbers");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        long number = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if ((number == -1 && PyErr_Occurred()) || non_negative(number, "query number")
            || grow_queries(self, (int32_t)number + 1) || list_append(found, (int32_t)number)) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    Py_ssize_t known = PyList_GET_SIZE(ids);
    uint64_t *seen = self->seen;
    int32_t low = INT32_MAX, high = -1, count = 0;
    for (int32_t j = 0; j < found->len; j++) {
        int32_t number = found->data[j];
        if (number >= known) {
            for (int32_t w = 0; w < self->nqueries / 64; w++) seen[w] = 0;
            found->len = 0;
            return PyErr_Format(PyExc_IndexError, "query number %d has no id", number);
        }
        int32_t word = number >> 6;
        uint64_t bit = (uint64_t)1 << (number & 63);
        if (!(seen[word] & bit)) {
            seen[word] |= bit;
            count++;
            if (word < low) low = word;
            if (word > high) high = word;
        }
    }
    found->len = 0;
    view_release(&self->views[position]);  /* the document is answered: its analysis may go */
    PyObject *answer = PyList_New(count);
    if (!answer) {
        for (int32_t w = low; w <= high; w++) seen[w] = 0;
        return NULL;
    }
    Py_ssize_t at = 0;
    for (int32_t w = low; w <= high; w++) {
        uint64_t bits = seen[w];
        if (!bits) continue;
        seen[w] = 0;
        while (bits) {
            int32_t number = (w << 6) + __builtin_ctzll(bits);
            bits &= bits - 1;
            PyObject *id = PyList_GET_ITEM(ids, number);
            Py_INCREF(id);
            PyList_SET_ITEM(answer, at++, id);
        }
    }
    return answer;
}

static void Core_dealloc(Core *self) {
    batch_release(self);
    for (int32_t k = 0; k < self->nkeys; k++) {
        free(self->verify[k].data);
        free(self->exact[k].data);
    }
    for (int32_t q = 0; q < self->nqueries; q++) node_free(self->slots[q].program);
    free(self->verify);
    free(self->exact);
    free(self->key_mask);
    free(self->df);
    free(self->counted);
    free(self->slots);
    free(self->seen);
    for (int32_t r = 0; r < self->nranges; r++) {
        RangeField *f = &self->ranges[r];
        Py_DECREF(f->field);
        free(f->low); free(f->high); free(f->number); free(f->exact);
    }
    free(self->ranges);
    for (int32_t i = 0; i < BATCH; i++) free(self->found[i].data);
    free(self->touched.data);
    free(self->held.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* count_key(key_id): count from now on the documents (candidates() calls) holding the key. */
static PyObject *Core_count_key(Core *self, PyObject *arg) {
    long key = PyLong_AsLong(arg);
    if ((key == -1 && PyErr_Occurred()) || non_negative(key, "key id") || grow_keys(self, (int32_t)key + 1)) return NULL;
    self->counted[key] = 1;
    Py_RETURN_NONE;
}

/* df(key_id) -> how many documents held the key since it was counted (0 for a key never seen). */
static PyObject *Core_df(Core *self, PyObject *arg) {
    long key = PyLong_AsLong(arg);
    if (key == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromUnsignedLong(key >= 0 && key < self->nkeys ? self->df[key] : 0);
}

/* halve_df(): every count halved (rounded down), as presearcher.observe decays its Counter. */
static PyObject *Core_halve_df(Core *self, PyObject *unused) {
    for (int32_t k = 0; k < self->nkeys; k++) self->df[k] >>= 1;
    Py_RETURN_NONE;
}

/* The documents observed to hold key `k` (a str) by the counts of this core: 0 for a key with no id
 * in `key_ids` or one never counted; -1 with an exception set. */
static long long key_df(const Core *self, PyObject *key_ids, PyObject *k) {
    PyObject *id = PyDict_GetItemWithError(key_ids, k);  /* borrowed */
    if (!id) return PyErr_Occurred() ? -1 : 0;
    long key = PyLong_AsLong(id);
    if (key == -1 && PyErr_Occurred()) return -1;
    return key >= 0 && key < self->nkeys ? self->df[key] : 0;
}

/* cheapest(alternatives, key_ids) -> the index of the clause (a tuple of keys) the fewest documents
 * are expected to hold: presearcher.cost summed in the same order, with the same doubles, and the
 * first of equals, as min() picks.  Re-keying chooses a clause for ~30,000 queries in the first
 * pass at 100,000 queries; in Python that choice was a quarter of re-keying. */
static PyObject *Core_cheapest(Core *self, PyObject *args) {
    PyObject *alternatives, *key_ids;
    if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &alternatives, &PyDict_Type, &key_ids)) return NULL;
    Py_ssize_t best = -1;
    double best_cost = 0.0;
    for (Py_ssize_t a = 0; a < PyTuple_GET_SIZE(alternatives); a++) {
        PyObject *clause = PyTuple_GET_ITEM(alternatives, a);
        if (!PyTuple_Check(clause)) {
            PyErr_SetString(PyExc_TypeError, "cheapest: each alternative must be a tuple of keys");
            return NULL;
        }
        double total = 0.0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(clause); i++) {
            PyObject *k = PyTuple_GET_ITEM(clause, i);
            if (!PyUnicode_Check(k)) {
                PyErr_SetString(PyExc_TypeError, "cheapest: a key must be a str");
                return NULL;
            }
            long long df = key_df(self, key_ids, k);
            if (df < 0) return NULL;
            Py_ssize_t length = PyUnicode_GET_LENGTH(k);
            Py_ssize_t sep = PyUnicode_FindChar(k, 0x1f, 0, length, 1);  /* keys.SEP; -1 if absent */
            if (sep == -2) return NULL;
            total += (double)df + 1.0 / (double)(2 + length - sep);  /* keys.prior_weight */
        }
        if (best < 0 || total < best_cost) {
            best = a;
            best_cost = total;
        }
    }
    if (best < 0) {
        PyErr_SetString(PyExc_ValueError, "cheapest: no alternatives");
        return NULL;
    }
    return PyLong_FromSsize_t(best);
}

/* held(keys, key_ids) -> the sum of the documents observed to hold each of `keys` (any iterable of str). */
static PyObject *Core_held(Core *self, PyObject *args) {
    PyObject *keys, *key_ids;
    if (!PyArg_ParseTuple(args, "OO!", &keys, &PyDict_Type, &key_ids)) return NULL;
    PyObject *it = PyObject_GetIter(keys);
    if (!it) return NULL;
    long long total = 0;
    PyObject *k;
    while ((k = PyIter_Next(it))) {
        long long df = key_df(self, key_ids, k);
        Py_DECREF(k);
        if (df < 0) {
            Py_DECREF(it);
            return NULL;
        }
        total += df;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromLongLong(total);
}

static PyMethodDef Core_methods[] = {
    {"count_key", (PyCFunction)Core_count_key, METH_O, "count_key(key_id): count the documents holding the key from now on."},
    {"df", (PyCFunction)Core_df, METH_O, "df(key_id) -> the number of documents that held the key since it was counted."},
    {"halve_df", (PyCFunction)Core_halve_df, METH_NOARGS, "halve_df(): halve every document count (rounded down)."},
    {"cheapest", (PyCFunction)Core_cheapest, METH_VARARGS,
     "cheapest(alternatives, key_ids) -> index of the clause of least expected document frequency (first of equals)."},
    {"held", (PyCFunction)Core_held, METH_VARARGS, "held(keys, key_ids) -> the documents observed to hold each key, summed."},
    {"add_posting", (PyCFunction)Core_add_posting, METH_VARARGS, "add_posting(key_id, number, exact): index a query under a key."},
    {"remove_posting", (PyCFunction)Core_remove_posting, METH_VARARGS, "remove_posting(key_id, number, exact) -> bool."},
    {"add_range", (PyCFunction)Core_add_range, METH_VARARGS,
     "add_range(field, number, low, high, exact): index a query under a range of a long field."},
    {"remove_range", (PyCFunction)Core_remove_range, METH_VARARGS, "remove_range(field, number) -> bool."},
    {"set_program", (PyCFunction)Core_set_program, METH_VARARGS,
     "set_program(number, program): how the query is verified (a tree of tagged tuples; None: in Python)."},
    {"batch", (PyCFunction)Core_batch, METH_VARARGS,
     "batch(doc_keys_list, key_ids, docs) -> per document, the numbers Python must verify; the matches found here are kept."},
    {"candidates", (PyCFunction)Core_candidates, METH_VARARGS,
     "candidates(doc_keys, key_ids, doc) -> the numbers Python must verify: batch() of one document."},
    {"check", (PyCFunction)Core_check, METH_VARARGS,
     "check(numbers, position=0) -> the numbers Python must verify; further candidates of a document of the batch."},
    {"answer", (PyCFunction)Core_answer, METH_VARARGS,
     "answer(verified, ids, position=0) -> ids of a document's kept matches and verified numbers, in number order."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beater.percolator.embedded._core.Core",
    .tp_doc = "Postings and keys-only conjunctions over integer key ids and query numbers.",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_core", "The embedded presearcher's native candidate loop.", -1, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
