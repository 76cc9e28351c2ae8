/* A document's presearch keys and its prefix view, native (optional; keys.py's python_document_keys
 * and fields.py's AnalysedDoc.python_prefix_view are the reference, used when this is not built).
 *
 * Why native: making a recent-change event's ~300 keys in Python was ~110 us per document, the
 * largest cost of percolation (its analysis is ~18 us natively), and its prefix view ~31 us: per
 * term a few string concatenations and set adds, each a handful of bytecodes.  Here they are one
 * pass over the terms with the strings built in place.
 *
 * document_keys(doc, star, star_prefix, star_long, plans, make_plan) is keys.py's document_keys
 * (star not None: with the ``*`` twins) or _field_keys (star None).  Python decides, per path and
 * per ``wanted``, which of the path's strings ``path SEP``, ``path SEP PREFIX_MARK`` and ``path SEP
 * LONG_PREFIX_MARK`` are made: ``plans`` maps a path to its plan, ``path SEP`` and then those three
 * (None for those not made), and ``make_plan(path)`` makes a missing one (stored into ``plans``).
 * Here each key is such a string followed by the term or its first PREFIX_LENGTH /
 * LONG_PREFIX_LENGTH characters.  The typed keys (numbers, booleans, dates: ``path SEP`` and a
 * typed term) are made here too, with the marks configure() was given.
 *
 * prefix_view(tokens, keywords, n) is AnalysedDoc.python_prefix_view's sorted lists (by field, text, keyword).
 *
 * A str must be in canonical form (the narrowest kind holding its characters: equal strings of
 * different kinds compare unequal), so a key is made with the largest character it really holds:
 * the start of a term can be narrower than the term.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* What configure() gave: keys.py's constants, so that the strings are defined in one place. */
static PyObject *k_sep, *k_long_kind, *k_long_mark, *k_float_mark, *k_true_term, *k_false_term;
static PyObject *k_date_mark, *k_bucket_mark, *k_date_bucket;
static Py_ssize_t k_prefix_length = -1, k_long_prefix_length = -1;

static PyObject *s_tokens, *s_keywords, *s_numbers, *s_booleans, *s_dates, *s_types, *s_get;

/* --- keys ------------------------------------------------------------------------------------- */

static inline Py_UCS4 max_ucs4(Py_UCS4 a, Py_UCS4 b) { return a > b ? a : b; }

#ifdef KEYS_CONCAT
/* The library's way, for comparison (build with -DKEYS_CONCAT): slice, then concatenate. */
static PyObject *join(PyObject *prefix, PyObject *term, Py_ssize_t n) {
    if (n == PyUnicode_GET_LENGTH(term)) return PyUnicode_Concat(prefix, term);
    PyObject *start = PyUnicode_Substring(term, 0, n);
    if (!start) return NULL;
    PyObject *out = PyUnicode_Concat(prefix, start);
    Py_DECREF(start);
    return out;
}
#else
/* ``prefix + term[:n]`` (n <= len(term)), canonical: written in place, one allocation (a third
 * faster per document than PyUnicode_Substring and PyUnicode_Concat, which make two strs). */
static PyObject *join(PyObject *prefix, PyObject *term, Py_ssize_t n) {
    Py_ssize_t plen = PyUnicode_GET_LENGTH(prefix);
    int pk = PyUnicode_KIND(prefix), tk = PyUnicode_KIND(term);
    const void *pd = PyUnicode_DATA(prefix), *td = PyUnicode_DATA(term);
    Py_UCS4 maxchar = PyUnicode_MAX_CHAR_VALUE(prefix);  /* a kind's bound: both strs are canonical */
    if (n == PyUnicode_GET_LENGTH(term) || PyUnicode_IS_ASCII(term)) {
        maxchar = max_ucs4(maxchar, PyUnicode_MAX_CHAR_VALUE(term));
    } else {  /* the start may be narrower than the whole term */
        for (Py_ssize_t i = 0; i < n; i++) maxchar = max_ucs4(maxchar, PyUnicode_READ(tk, td, i));
    }
    PyObject *out = PyUnicode_New(plen + n, maxchar);
    if (!out) return NULL;
    int ok = PyUnicode_KIND(out);
    void *od = PyUnicode_DATA(out);
    if (pk == ok) {
        memcpy(od, pd, (size_t)plen * (size_t)ok);
    } else {
        for (Py_ssize_t i = 0; i < plen; i++) PyUnicode_WRITE(ok, od, i, PyUnicode_READ(pk, pd, i));
    }
    if (tk == ok) {
        memcpy((char *)od + (size_t)plen * (size_t)ok, td, (size_t)n * (size_t)ok);
    } else {
        for (Py_ssize_t i = 0; i < n; i++) PyUnicode_WRITE(ok, od, plen + i, PyUnicode_READ(tk, td, i));
    }
    return out;
}
#endif

/* Keys repeat from one document to the next (field names with common tokens, the starts of tokens):
 * a direct-mapped table of the keys last made finds ~70% of a recent-change event's keys, which
 * saves making them (allocation, copy, siphash, freeing), ~2-3 of ~35 us per document; the rest of
 * a hit's cost is the cache misses of reading the slot and the key.  A slot is found by the prefix
 * string's address (the slot holds it) and the term part's hash. */
#define KEY_SLOTS 8192
#define KEY_CACHE_MAX_LENGTH 48 /* longer terms (whole keyword values) mostly do not repeat */
typedef struct {
    PyObject *prefix; /* owned: so that its address is not reused while the slot names it */
    PyObject *key;    /* owned */
} KeySlot;
static KeySlot key_slots[KEY_SLOTS];

static inline uint64_t chars_hash(int kind, const void *data, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    if (kind == PyUnicode_1BYTE_KIND) {
        for (Py_ssize_t i = 0; i < n; i++) h = (h ^ ((const Py_UCS1 *)data)[i]) * 1099511628211ULL;
    } else if (kind == PyUnicode_2BYTE_KIND) {
        for (Py_ssize_t i = 0; i < n; i++) h = (h ^ ((const Py_UCS2 *)data)[i]) * 1099511628211ULL;
    } else {
        for (Py_ssize_t i = 0; i < n; i++) h = (h ^ ((const Py_UCS4 *)data)[i]) * 1099511628211ULL;
    }
    return h;
}

/* Whether `key` (made from `prefix`, plen characters long) is prefix + term[:n]. */
static inline int key_matches(PyObject *key, Py_ssize_t plen, PyObject *term, Py_ssize_t n) {
    if (PyUnicode_GET_LENGTH(key) != plen + n) return 0;
    int kk = PyUnicode_KIND(key), tk = PyUnicode_KIND(term);
    const void *kd = PyUnicode_DATA(key), *td = PyUnicode_DATA(term);
    if (kk == tk) return memcmp((const char *)kd + (size_t)plen * (size_t)kk, td, (size_t)n * (size_t)kk) == 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyUnicode_READ(kk, kd, plen + i) != PyUnicode_READ(tk, td, i)) return 0;
    return 1;
}

/* prefix + term[:n], from the table when it holds it (a new reference). */
static PyObject *cached_join(PyObject *prefix, PyObject *term, Py_ssize_t n) {
#ifdef KEYS_NO_CACHE
    return join(prefix, term, n);
#endif
    if (n > KEY_CACHE_MAX_LENGTH) return join(prefix, term, n);
    uint64_t h;
    if (n == PyUnicode_GET_LENGTH(term) && ((PyASCIIObject *)term)->hash != -1) {
        h = (uint64_t)((PyASCIIObject *)term)->hash; /* a token: a dict key, hashed already */
    } else {
        h = chars_hash(PyUnicode_KIND(term), PyUnicode_DATA(term), n);
    }
    h ^= ((uint64_t)(uintptr_t)prefix >> 4) * 0x9E3779B97F4A7C15ULL;
    KeySlot *slot = &key_slots[(h ^ (h >> 29)) & (KEY_SLOTS - 1)];
    if (slot->prefix == prefix && key_matches(slot->key, PyUnicode_GET_LENGTH(prefix), term, n)) {
        Py_INCREF(slot->key);
        return slot->key;
    }
    PyObject *key = join(prefix, term, n);
    if (!key) return NULL;
    Py_INCREF(prefix);
    Py_XSETREF(slot->prefix, prefix);
    Py_INCREF(key);
    Py_XSETREF(slot->key, key);
    return key;
}

/* keys.add(prefix + term[:n]); 0 or -1. */
static inline int add_join(PyObject *keys, PyObject *prefix, PyObject *term, Py_ssize_t n) {
    PyObject *k = cached_join(prefix, term, n);
    if (!k) return -1;
    int r = PySet_Add(keys, k);
    Py_DECREF(k);
    return r;
}

typedef struct {
    PyObject *field_term, *field_prefix, *field_long;  /* borrowed from the plan, NULL: not made */
    PyObject *star, *star_prefix, *star_long;          /* borrowed, NULL: not made */
} TermPlan;

static int term_keys(PyObject *keys, const TermPlan *p, PyObject *term) {
    if (!PyUnicode_Check(term)) {
        PyErr_Format(PyExc_TypeError, "a document's terms are str, not %.100s", Py_TYPE(term)->tp_name);
        return -1;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(term);
    if (p->field_term && add_join(keys, p->field_term, term, len) < 0) return -1;
    if (p->star && add_join(keys, p->star, term, len) < 0) return -1;
    if (len >= k_prefix_length) {
        if (p->field_prefix && add_join(keys, p->field_prefix, term, k_prefix_length) < 0) return -1;
        if (p->star_prefix && add_join(keys, p->star_prefix, term, k_prefix_length) < 0) return -1;
    }
    if (len >= k_long_prefix_length) {
        if (p->field_long && add_join(keys, p->field_long, term, k_long_prefix_length) < 0) return -1;
        if (p->star_long && add_join(keys, p->star_long, term, k_long_prefix_length) < 0) return -1;
    }
    return 0;
}

/* Call each(arg, term) on every term of `terms` (a dict's keys: a text field's postings; or the items
 * of a list or any iterable: a keyword field's values). */
typedef int (*TermFn)(void *arg, PyObject *term);

static int each_term(PyObject *terms, TermFn each, void *arg) {
    if (PyDict_Check(terms)) {
        Py_ssize_t pos = 0;
        PyObject *term, *value;
        while (PyDict_Next(terms, &pos, &term, &value)) {
            Py_INCREF(term);
            int r = each(arg, term);
            Py_DECREF(term);
            if (r < 0) return -1;
        }
        return 0;
    }
    PyObject *seq = PySequence_Fast(terms, "a document's terms are a dict or an iterable");
    if (!seq) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *term = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(term);
        int r = each(arg, term);
        Py_DECREF(term);
        if (r < 0) { Py_DECREF(seq); return -1; }
    }
    Py_DECREF(seq);
    return 0;
}

/* Call each(arg, key, value) on every item of a mapping (a dict, or anything with items()). */
typedef int (*ItemFn)(void *arg, PyObject *key, PyObject *value);

static int each_item(PyObject *mapping, ItemFn each, void *arg) {
    if (PyDict_Check(mapping)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        Py_INCREF(mapping);  /* held: each() may run Python code (make_plan) */
        while (PyDict_Next(mapping, &pos, &key, &value)) {
            Py_INCREF(key);
            Py_INCREF(value);
            int r = each(arg, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (r < 0) { Py_DECREF(mapping); return -1; }
        }
        Py_DECREF(mapping);
        return 0;
    }
    PyObject *items = PyMapping_Items(mapping);
    if (!items) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "items() gives pairs");
            Py_DECREF(items);
            return -1;
        }
        if (each(arg, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) < 0) { Py_DECREF(items); return -1; }
    }
    Py_DECREF(items);
    return 0;
}

typedef struct {
    PyObject *keys;
    PyObject *plans, *make_plan;
    PyObject *star, *star_prefix, *star_long;  /* NULL: not made */
    PyObject *types;                           /* the typed loops: doc.types */
    PyObject *path_sep;                        /* the typed loops: path + SEP of the current path (borrowed) */
    int is_long;
} KeysRun;

/* The plan's string i: a str, or None (NULL here); anything else is an error. */
static int plan_string(PyObject *plan, Py_ssize_t i, PyObject **out) {
    PyObject *s = PyTuple_GET_ITEM(plan, i);
    if (s == Py_None) { *out = NULL; return 0; }
    if (!PyUnicode_Check(s)) { PyErr_SetString(PyExc_TypeError, "a path's key plan holds str or None"); return -1; }
    *out = s;
    return 0;
}

/* plans[path], made by make_plan(path) when missing: (path SEP, then the three strings or None). */
static PyObject *plan_of(KeysRun *run, PyObject *path) {
    PyObject *plan = PyDict_GetItemWithError(run->plans, path);  /* borrowed */
    if (plan) {
        Py_INCREF(plan);
    } else {
        if (PyErr_Occurred()) return NULL;
        plan = PyObject_CallOneArg(run->make_plan, path);
        if (!plan) return NULL;
        if (PyDict_SetItem(run->plans, path, plan) < 0) { Py_DECREF(plan); return NULL; }
    }
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 4 || !PyUnicode_Check(PyTuple_GET_ITEM(plan, 0))) {
        PyErr_SetString(PyExc_TypeError, "a path's key plan is (path SEP, three str or None)");
        Py_DECREF(plan);
        return NULL;
    }
    return plan;
}

typedef struct {
    KeysRun run;
    TermPlan plan;  /* the current path's */
} PathRun;

static int term_of_plan(void *arg, PyObject *term) {
    PathRun *pr = (PathRun *)arg;
    return term_keys(pr->run.keys, &pr->plan, term);
}

static int path_terms(void *arg, PyObject *path, PyObject *terms) {
    PathRun *pr = (PathRun *)arg;
    KeysRun *run = &pr->run;
    PyObject *plan = plan_of(run, path);
    if (!plan) return -1;
    int r = -1;
    TermPlan *p = &pr->plan;
    if (plan_string(plan, 1, &p->field_term) < 0 || plan_string(plan, 2, &p->field_prefix) < 0
        || plan_string(plan, 3, &p->field_long) < 0)
        goto done;
    p->star = run->star;
    p->star_prefix = run->star_prefix;
    p->star_long = run->star_long;
    if (!(p->field_term || p->field_prefix || p->field_long || p->star)) { r = 0; goto done; }  /* nothing to make */
    r = each_term(terms, term_of_plan, pr);
done:
    Py_DECREF(plan);
    return r;
}

/* path SEP term and, with the ``*`` twins, * SEP term (through the table: typed keys repeat too). */
static int add_typed(KeysRun *run, PyObject *term) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(term);
    if (add_join(run->keys, run->path_sep, term, n) < 0) return -1;
    if (run->star && add_join(run->keys, run->star, term, n) < 0) return -1;
    return 0;
}

/* mark + str(value) (or repr(value)); a new reference. */
static PyObject *marked(PyObject *mark, PyObject *value, int use_repr) {
    PyObject *text = use_repr ? PyObject_Repr(value) : PyObject_Str(value);
    if (!text) return NULL;
    PyObject *out = PyUnicode_Concat(mark, text);
    Py_DECREF(text);
    return out;
}

/* mark + str(v) for an int of 64 bits, written in place (the common case: longs and dates). */
static PyObject *marked_integer(PyObject *mark, long long v) {
    char digits[24];
    int len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { digits[sizeof digits - 1 - len++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) digits[sizeof digits - 1 - len++] = '-';
    Py_ssize_t mlen = PyUnicode_GET_LENGTH(mark);
    PyObject *out = PyUnicode_New(mlen + len, PyUnicode_MAX_CHAR_VALUE(mark));
    if (!out) return NULL;
    int kind = PyUnicode_KIND(out);  /* the mark's: digits are ASCII */
    void *data = PyUnicode_DATA(out);
    memcpy(data, PyUnicode_DATA(mark), (size_t)mlen * (size_t)kind);
    for (int i = 0; i < len; i++) PyUnicode_WRITE(kind, data, mlen + i, (Py_UCS4)digits[sizeof digits - len + i]);
    return out;
}

/* An exact int's value if it has 64 bits (1), else 0 (also on no error: the generic path then). */
static int small_int(PyObject *value, long long *out) {
    if (!PyLong_CheckExact(value)) return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (*out == -1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    return !overflow;
}

static int number_key(void *arg, PyObject *number) {
    KeysRun *run = (KeysRun *)arg;
    PyObject *term;
    long long v;
    if (run->is_long) {  /* long_term(int(number)) */
        if (small_int(number, &v)) {
            term = marked_integer(k_long_mark, v);
        } else {
            PyObject *integer = PyNumber_Long(number);
            if (!integer) return -1;
            term = marked(k_long_mark, integer, 0);
            Py_DECREF(integer);
        }
    } else {  /* float_term(number) */
        term = marked(k_float_mark, number, 1);
    }
    if (!term) return -1;
    int r = add_typed(run, term);
    Py_DECREF(term);
    return r;
}

static int boolean_key(void *arg, PyObject *flag) {
    int truth = PyObject_IsTrue(flag);
    if (truth < 0) return -1;
    return add_typed((KeysRun *)arg, truth ? k_true_term : k_false_term);
}

static int date_key(void *arg, PyObject *millis) {
    KeysRun *run = (KeysRun *)arg;
    long long v, bucket_size;
    PyObject *term, *bucket_term;
    if (small_int(millis, &v) && small_int(k_date_bucket, &bucket_size) && bucket_size > 0) {
        long long bucket = v / bucket_size;
        if (v % bucket_size != 0 && v < 0) bucket--;  /* Python's // floors */
        term = marked_integer(k_date_mark, v);
        bucket_term = term ? marked_integer(k_bucket_mark, bucket) : NULL;
    } else {  /* date_term(millis), date_bucket_term(millis) */
        term = marked(k_date_mark, millis, 0);
        PyObject *bucket = term ? PyNumber_FloorDivide(millis, k_date_bucket) : NULL;
        bucket_term = bucket ? marked(k_bucket_mark, bucket, 0) : NULL;
        Py_XDECREF(bucket);
    }
    int r = bucket_term ? add_typed(run, term) : -1;
    if (r == 0) r = add_typed(run, bucket_term);
    Py_XDECREF(term);
    Py_XDECREF(bucket_term);
    return r;
}

static int typed_path(KeysRun *run, PyObject *path, PyObject *values, TermFn each) {
    PyObject *plan = plan_of(run, path);
    if (!plan) return -1;
    run->path_sep = PyTuple_GET_ITEM(plan, 0);
    int r = each_term(values, each, run);
    run->path_sep = NULL;
    Py_DECREF(plan);
    return r;
}

static int number_path(void *arg, PyObject *path, PyObject *numbers) {
    KeysRun *run = (KeysRun *)arg;
    PyObject *kind;  /* doc.types.get(path) */
    if (PyDict_CheckExact(run->types)) {
        kind = PyDict_GetItemWithError(run->types, path);
        if (!kind && PyErr_Occurred()) return -1;
        if (!kind) kind = Py_None;
        Py_INCREF(kind);
    } else {
        kind = PyObject_CallMethodOneArg(run->types, s_get, path);
        if (!kind) return -1;
    }
    int is_long = PyObject_RichCompareBool(kind, k_long_kind, Py_EQ);
    Py_DECREF(kind);
    if (is_long < 0) return -1;
    run->is_long = is_long;
    return typed_path(run, path, numbers, number_key);
}

static int boolean_path(void *arg, PyObject *path, PyObject *flags) { return typed_path(arg, path, flags, boolean_key); }
static int date_path(void *arg, PyObject *path, PyObject *dates) { return typed_path(arg, path, dates, date_key); }

static int keys_of(PathRun *pr, PyObject *doc) {
    KeysRun *run = &pr->run;
    PyObject *names[] = {s_tokens, s_keywords};
    for (int i = 0; i < 2; i++) {
        PyObject *group = PyObject_GetAttr(doc, names[i]);
        if (!group) return -1;
        int r = each_item(group, path_terms, pr);
        Py_DECREF(group);
        if (r < 0) return -1;
    }
    run->types = PyObject_GetAttr(doc, s_types);
    if (!run->types) return -1;
    PyObject *typed_names[] = {s_numbers, s_booleans, s_dates};
    ItemFn typed[] = {number_path, boolean_path, date_path};
    int r = 0;
    for (int i = 0; i < 3 && r == 0; i++) {
        PyObject *group = PyObject_GetAttr(doc, typed_names[i]);
        if (!group) { r = -1; break; }
        r = each_item(group, typed[i], run);
        Py_DECREF(group);
    }
    Py_CLEAR(run->types);
    return r;
}

/* *out = value (a str) or NULL (None); -1 on anything else. */
static int optional_str(PyObject *value, const char *name, PyObject **out) {
    *out = NULL;
    if (value == Py_None) return 0;
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s is a str or None", name);
        return -1;
    }
    *out = value;
    return 0;
}

static PyObject *py_document_keys(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "document_keys(doc, star, star_prefix, star_long, plans, make_plan)");
        return NULL;
    }
    if (!k_sep) {
        PyErr_SetString(PyExc_RuntimeError, "_keys.configure() was not called");
        return NULL;
    }
    PathRun pr;
    memset(&pr, 0, sizeof pr);
    KeysRun *run = &pr.run;
    const char *names[] = {"star", "star_prefix", "star_long"};
    PyObject **stars[] = {&run->star, &run->star_prefix, &run->star_long};
    for (int i = 0; i < 3; i++)
        if (optional_str(args[1 + i], names[i], stars[i]) < 0) return NULL;
    if (!run->star && (run->star_prefix || run->star_long)) {
        PyErr_SetString(PyExc_ValueError, "star prefixes without star");
        return NULL;
    }
    if (!PyDict_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "plans is a dict");
        return NULL;
    }
    run->plans = args[4];
    run->make_plan = args[5];
    run->keys = PySet_New(NULL);
    if (!run->keys) return NULL;
    if (keys_of(&pr, args[0]) < 0) {
        Py_DECREF(run->keys);
        return NULL;
    }
    return run->keys;
}

/* --- prefix view ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject *by_field, *all;  /* all: the text or the keyword list */
    PyObject *path;            /* borrowed: the current path */
    PyObject *field;           /* borrowed from by_field: the current path's list, NULL until its first term */
    Py_ssize_t n;
} ViewRun;

static int view_term(void *arg, PyObject *term) {
    ViewRun *run = (ViewRun *)arg;
    if (!PyUnicode_Check(term)) {
        PyErr_Format(PyExc_TypeError, "a document's terms are str, not %.100s", Py_TYPE(term)->tp_name);
        return -1;
    }
    if (PyUnicode_GET_LENGTH(term) < run->n) return 0;
    if (run->field == NULL) {  /* by_field.setdefault(path, []) */
        run->field = PyDict_GetItemWithError(run->by_field, run->path);
        if (run->field == NULL) {
            if (PyErr_Occurred()) return -1;
            PyObject *list = PyList_New(0);
            if (!list) return -1;
            int r = PyDict_SetItem(run->by_field, run->path, list);
            Py_DECREF(list);  /* the dict holds it */
            if (r < 0) return -1;
            run->field = list;
        }
    }
    if (PyList_Append(run->field, term) < 0) return -1;
    return PyList_Append(run->all, term);
}

static int view_path(void *arg, PyObject *path, PyObject *terms) {
    ViewRun *run = (ViewRun *)arg;
    run->path = path;
    run->field = NULL;
    return each_term(terms, view_term, run);
}

static PyObject *py_prefix_view(PyObject *self, PyObject *args) {
    PyObject *tokens, *keywords;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OOn:prefix_view", &tokens, &keywords, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "prefix_view: n is not negative");
        return NULL;
    }
    PyObject *by_field = PyDict_New(), *text = PyList_New(0), *keyword = PyList_New(0);
    if (!by_field || !text || !keyword) goto fail;
    ViewRun run = {by_field, text, NULL, NULL, n};
    if (each_item(tokens, view_path, &run) < 0) goto fail;
    run.all = keyword;
    if (each_item(keywords, view_path, &run) < 0) goto fail;
    Py_ssize_t pos = 0;
    PyObject *path, *terms;
    while (PyDict_Next(by_field, &pos, &path, &terms))
        if (PyList_Sort(terms) < 0) goto fail;
    if (PyList_Sort(text) < 0 || PyList_Sort(keyword) < 0) goto fail;
    PyObject *out = PyTuple_Pack(3, by_field, text, keyword);
    Py_DECREF(by_field); Py_DECREF(text); Py_DECREF(keyword);
    return out;
fail:
    Py_XDECREF(by_field); Py_XDECREF(text); Py_XDECREF(keyword);
    return NULL;
}

/* --- module ------------------------------------------------------------------------------------- */

static PyObject *py_configure(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"sep", "long_kind", "long_mark", "float_mark", "true_term", "false_term", "date_mark",
                             "bucket_mark", "date_bucket", "prefix_length", "long_prefix_length", NULL};
    PyObject *sep, *long_kind, *long_mark, *float_mark, *true_term, *false_term, *date_mark, *bucket_mark, *date_bucket;
    Py_ssize_t prefix_length, long_prefix_length;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UOUUUUUUOnn:configure", kwlist, &sep, &long_kind, &long_mark,
                                     &float_mark, &true_term, &false_term, &date_mark, &bucket_mark, &date_bucket,
                                     &prefix_length, &long_prefix_length))
        return NULL;
    if (prefix_length < 0 || long_prefix_length < 0) {
        PyErr_SetString(PyExc_ValueError, "prefix lengths are not negative");
        return NULL;
    }
    PyObject **slots[] = {&k_sep, &k_long_kind, &k_long_mark, &k_float_mark, &k_true_term, &k_false_term,
                          &k_date_mark, &k_bucket_mark, &k_date_bucket};
    PyObject *values[] = {sep, long_kind, long_mark, float_mark, true_term, false_term, date_mark, bucket_mark, date_bucket};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*slots[i], values[i]);
    }
    k_prefix_length = prefix_length;
    k_long_prefix_length = long_prefix_length;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"document_keys", (PyCFunction)(void (*)(void))py_document_keys, METH_FASTCALL,
     "document_keys(doc, star, star_prefix, star_long, plans, make_plan) -> set: keys.py's document_keys "
     "(star None: _field_keys)."},
    {"prefix_view", py_prefix_view, METH_VARARGS,
     "prefix_view(tokens, keywords, n) -> (by_field, text, keyword), sorted lists: AnalysedDoc.python_prefix_view."},
    {"configure", (PyCFunction)(void (*)(void))py_configure, METH_VARARGS | METH_KEYWORDS,
     "configure(sep, long_kind, long_mark, float_mark, true_term, false_term, date_mark, bucket_mark, date_bucket, "
     "prefix_length, long_prefix_length): keys.py's constants."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_keys", "The embedded percolator's native presearch keys and prefix view of a document.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__keys(void) {
    struct { PyObject **slot; const char *name; } names[] = {
        {&s_tokens, "tokens"}, {&s_keywords, "keywords"}, {&s_numbers, "numbers"}, {&s_booleans, "booleans"},
        {&s_dates, "dates"}, {&s_types, "types"}, {&s_get, "get"}
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!*names[i].slot && !(*names[i].slot = PyUnicode_InternFromString(names[i].name))) return NULL;
    }
    return PyModule_Create(&module);
}
