/* The presearcher's hot loop over a compact integer layout (optional; presearcher.py has the same
 * logic in Python and is used when this module is not built).
 *
 * Why native: at 100,000 stored queries a document has ~2,000 candidates and most are keys-only
 * conjunctions.  In Python each candidate costs ~1 us, nearly all of it cache misses on scattered
 * objects (a list slot, a tuple, its strings, the set's buckets).  Here keys and query numbers are
 * small integers, postings are int32 arrays, a keys-only conjunction is one int32 block, and the
 * document's keys are a stamp per key id: a candidate costs a few loads from memory that stays hot.
 *
 * Core holds, per key id, the numbers of the queries indexed under it (exact ones, which match
 * when the key is held, and those to verify), and per query number its keys-only conjunction if it
 * has one.  Per document, candidates(doc_keys, key_ids) selects the candidates, keeps those that
 * match by keys alone (exact ones, conjunctions that hold) and returns the others for Python to
 * verify; answer(verified, ids) then gives the ids of all matches in registration order.  Every
 * query appears once.
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

typedef struct {
    PyObject_HEAD
    int32_t nkeys;          /* capacity of the per-key arrays */
    IntList *verify;        /* key id -> query numbers to verify */
    IntList *exact;         /* key id -> query numbers that match when the key is held */
    uint32_t *key_stamp;    /* key id -> stamp of the last document holding it */
    int32_t nqueries;       /* capacity of the per-query arrays */
    int32_t **forms;        /* query number -> [n_req, n_forb, n_groups, req.., forb.., (len, keys..)..] or NULL */
    uint32_t *query_stamp;  /* query number -> stamp of the last document it was a candidate of */
    uint32_t stamp;
    IntList found;          /* scratch: the numbers matched for the current document */
    IntList held;           /* scratch: the key ids the current document holds */
} Core;

static int grow_keys(Core *self, int32_t needed) {
    if (needed <= self->nkeys) return 0;
    int32_t cap = self->nkeys ? self->nkeys : 1024;
    while (cap < needed) cap *= 2;
    IntList *verify = realloc(self->verify, sizeof(IntList) * cap);
    if (!verify) { PyErr_NoMemory(); return -1; }
    self->verify = verify;
    IntList *exact = realloc(self->exact, sizeof(IntList) * cap);
    if (!exact) { PyErr_NoMemory(); return -1; }
    self->exact = exact;
    uint32_t *stamps = realloc(self->key_stamp, sizeof(uint32_t) * cap);
    if (!stamps) { PyErr_NoMemory(); return -1; }
    self->key_stamp = stamps;
    memset(self->verify + self->nkeys, 0, sizeof(IntList) * (cap - self->nkeys));
    memset(self->exact + self->nkeys, 0, sizeof(IntList) * (cap - self->nkeys));
    memset(self->key_stamp + self->nkeys, 0, sizeof(uint32_t) * (cap - self->nkeys));
    self->nkeys = cap;
    return 0;
}

static int grow_queries(Core *self, int32_t needed) {
    if (needed <= self->nqueries) return 0;
    int32_t cap = self->nqueries ? self->nqueries : 1024;
    while (cap < needed) cap *= 2;
    int32_t **forms = realloc(self->forms, sizeof(int32_t *) * cap);
    if (!forms) { PyErr_NoMemory(); return -1; }
    self->forms = forms;
    uint32_t *stamps = realloc(self->query_stamp, sizeof(uint32_t) * cap);
    if (!stamps) { PyErr_NoMemory(); return -1; }
    self->query_stamp = stamps;
    memset(self->forms + self->nqueries, 0, sizeof(int32_t *) * (cap - self->nqueries));
    memset(self->query_stamp + self->nqueries, 0, sizeof(uint32_t) * (cap - self->nqueries));
    self->nqueries = cap;
    return 0;
}

static int list_append(IntList *list, int32_t value) {
    if (list->len == list->cap) {
        int32_t cap = list->cap ? list->cap * 2 : 4;
        int32_t *data = realloc(list->data, sizeof(int32_t) * cap);
        if (!data) { PyErr_NoMemory(); return -1; }
        list->data = data;
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

/* Append the ints of a sequence to block[*at..], checking each is a known-size key id. */
static int copy_keys(Core *self, PyObject *seq, int32_t *block, Py_ssize_t *at) {
    PyObject *fast = PySequence_Fast(seq, "keys must be a sequence of key ids");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        long key = PyLong_AsLong(items[i]);
        if (key == -1 && PyErr_Occurred()) { Py_DECREF(fast); return -1; }
        if (non_negative(key, "key id") || grow_keys(self, (int32_t)key + 1)) { Py_DECREF(fast); return -1; }
        block[(*at)++] = (int32_t)key;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *Core_set_form(Core *self, PyObject *args) {
    long number;
    PyObject *req, *forb, *groups;
    if (!PyArg_ParseTuple(args, "lOOO", &number, &req, &forb, &groups)) return NULL;
    if (non_negative(number, "query number") || grow_queries(self, (int32_t)number + 1)) return NULL;
    Py_ssize_t nreq = PySequence_Size(req), nforb = PySequence_Size(forb), ngroups = PySequence_Size(groups);
    if (nreq < 0 || nforb < 0 || ngroups < 0) return NULL;
    Py_ssize_t size = 3 + nreq + nforb + ngroups;
    PyObject *fast_groups = PySequence_Fast(groups, "groups must be a sequence");
    if (!fast_groups) return NULL;
    for (Py_ssize_t g = 0; g < ngroups; g++) {
        Py_ssize_t len = PySequence_Size(PySequence_Fast_GET_ITEM(fast_groups, g));
        if (len < 0) { Py_DECREF(fast_groups); return NULL; }
        size += len;
    }
    int32_t *block = malloc(sizeof(int32_t) * size);
    if (!block) { Py_DECREF(fast_groups); return PyErr_NoMemory(); }
    Py_ssize_t at = 3;
    block[0] = (int32_t)nreq;
    block[1] = (int32_t)nforb;
    block[2] = (int32_t)ngroups;
    if (copy_keys(self, req, block, &at) || copy_keys(self, forb, block, &at)) goto fail;
    for (Py_ssize_t g = 0; g < ngroups; g++) {
        PyObject *group = PySequence_Fast_GET_ITEM(fast_groups, g);
        Py_ssize_t len_at = at++;
        Py_ssize_t start = at;
        if (copy_keys(self, group, block, &at)) goto fail;
        block[len_at] = (int32_t)(at - start);
    }
    Py_DECREF(fast_groups);
    free(self->forms[number]);
    self->forms[number] = block;
    Py_RETURN_NONE;
fail:
    Py_DECREF(fast_groups);
    free(block);
    return NULL;
}

static PyObject *Core_clear_form(Core *self, PyObject *args) {
    long number;
    if (!PyArg_ParseTuple(args, "l", &number)) return NULL;
    if (number >= 0 && number < self->nqueries) {
        free(self->forms[number]);
        self->forms[number] = NULL;
    }
    Py_RETURN_NONE;
}

static inline int holds(const Core *self, const int32_t *form) {
    const uint32_t *held = self->key_stamp;
    const uint32_t stamp = self->stamp;
    int32_t nreq = form[0], nforb = form[1], ngroups = form[2];
    const int32_t *p = form + 3;
    for (int32_t i = 0; i < nreq; i++)
        if (held[p[i]] != stamp) return 0;
    p += nreq;
    for (int32_t i = 0; i < nforb; i++)
        if (held[p[i]] == stamp) return 0;
    p += nforb;
    for (int32_t g = 0; g < ngroups; g++) {
        int32_t len = *p++;
        int found = 0;
        for (int32_t i = 0; i < len; i++)
            if (held[p[i]] == stamp) { found = 1; break; }
        if (!found) return 0;
        p += len;
    }
    return 1;
}

static int compare_numbers(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int append_number(PyObject *list, int32_t number) {
    PyObject *value = PyLong_FromLong(number);
    if (!value) return -1;
    int failed = PyList_Append(list, value);
    Py_DECREF(value);
    return failed;
}

/* candidates(doc_keys, key_ids) -> to_verify: starts a document.  The document's keys (strings)
 * are looked up in key_ids (str -> key id); the queries they select that match by their keys alone
 * are kept for answer(), the others are returned for Python to verify. */
static PyObject *Core_candidates(Core *self, PyObject *args) {
    PyObject *doc_keys, *key_ids;
    if (!PyArg_ParseTuple(args, "OO!", &doc_keys, &PyDict_Type, &key_ids)) return NULL;
    if (++self->stamp == 0) {  /* wrapped after 2^32 documents: forget every old stamp */
        memset(self->key_stamp, 0, sizeof(uint32_t) * self->nkeys);
        memset(self->query_stamp, 0, sizeof(uint32_t) * self->nqueries);
        self->stamp = 1;
    }
    const uint32_t stamp = self->stamp;
    IntList *held = &self->held, *found = &self->found;
    held->len = 0;
    found->len = 0;
    PyObject *iterator = PyObject_GetIter(doc_keys);
    if (!iterator) return NULL;
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        PyObject *id = PyDict_GetItemWithError(key_ids, item);  /* borrowed */
        Py_DECREF(item);
        if (id == NULL) {
            if (PyErr_Occurred()) { Py_DECREF(iterator); return NULL; }
            continue;  /* a key no stored query uses */
        }
        long key = PyLong_AsLong(id);
        if (key == -1 && PyErr_Occurred()) { Py_DECREF(iterator); return NULL; }
        if (key < 0 || key >= self->nkeys) continue;
        self->key_stamp[key] = stamp;
        if (list_append(held, (int32_t)key)) { Py_DECREF(iterator); return NULL; }
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) return NULL;
    PyObject *to_verify = PyList_New(0);
    if (!to_verify) return NULL;
    for (int32_t i = 0; i < held->len; i++) {
        int32_t key = held->data[i];
        const IntList *exact = &self->exact[key];
        for (int32_t j = 0; j < exact->len; j++) {
            int32_t number = exact->data[j];
            if (self->query_stamp[number] == stamp) continue;
            self->query_stamp[number] = stamp;
            if (list_append(found, number)) goto fail;
        }
        const IntList *verify = &self->verify[key];
        for (int32_t j = 0; j < verify->len; j++) {
            int32_t number = verify->data[j];
            if (self->query_stamp[number] == stamp) continue;
            self->query_stamp[number] = stamp;
            const int32_t *form = self->forms[number];
            if (form == NULL) {
                if (append_number(to_verify, number)) goto fail;
            } else if (holds(self, form)) {
                if (list_append(found, number)) goto fail;
            }
        }
    }
    return to_verify;
fail:
    Py_DECREF(to_verify);
    return NULL;
}

/* answer(verified, ids) -> the ids of the document's matches in registration (number) order: the
 * queries kept by candidates() and the numbers Python verified, each number mapped through ids. */
static PyObject *Core_answer(Core *self, PyObject *args) {
    PyObject *verified, *ids;
    if (!PyArg_ParseTuple(args, "OO!", &verified, &PyList_Type, &ids)) return NULL;
    IntList *found = &self->found;
    PyObject *fast = PySequence_Fast(verified, "verified must be a sequence of query numbers");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        long number = PyLong_AsLong(items[i]);
        if ((number == -1 && PyErr_Occurred()) || non_negative(number, "query number") || list_append(found, (int32_t)number)) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    qsort(found->data, found->len, sizeof(int32_t), compare_numbers);
    Py_ssize_t known = PyList_GET_SIZE(ids);
    PyObject *answer = PyList_New(found->len);
    if (!answer) return NULL;
    for (int32_t j = 0; j < found->len; j++) {
        int32_t number = found->data[j];
        if (number >= known) {
            Py_DECREF(answer);
            return PyErr_Format(PyExc_IndexError, "query number %d has no id", number);
        }
        PyObject *id = PyList_GET_ITEM(ids, number);
        Py_INCREF(id);
        PyList_SET_ITEM(answer, j, id);
    }
    found->len = 0;
    return answer;
}

static void Core_dealloc(Core *self) {
    for (int32_t k = 0; k < self->nkeys; k++) {
        free(self->verify[k].data);
        free(self->exact[k].data);
    }
    for (int32_t q = 0; q < self->nqueries; q++) free(self->forms[q]);
    free(self->verify);
    free(self->exact);
    free(self->key_stamp);
    free(self->forms);
    free(self->query_stamp);
    free(self->found.data);
    free(self->held.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Core_methods[] = {
    {"add_posting", (PyCFunction)Core_add_posting, METH_VARARGS, "add_posting(key_id, number, exact): index a query under a key."},
    {"remove_posting", (PyCFunction)Core_remove_posting, METH_VARARGS, "remove_posting(key_id, number, exact) -> bool."},
    {"set_form", (PyCFunction)Core_set_form, METH_VARARGS,
     "set_form(number, required, forbidden, groups): the query's keys-only conjunction (key ids)."},
    {"clear_form", (PyCFunction)Core_clear_form, METH_VARARGS, "clear_form(number): the query is verified in Python."},
    {"candidates", (PyCFunction)Core_candidates, METH_VARARGS,
     "candidates(doc_keys, key_ids) -> the numbers Python must verify; the matches by keys alone are kept."},
    {"answer", (PyCFunction)Core_answer, METH_VARARGS,
     "answer(verified, ids) -> ids of the kept matches and the verified numbers, in number order."},
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
