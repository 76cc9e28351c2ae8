/* The standard analyzer and the document walk of fields.py, native (optional; analysis.py and
 * fields.py have the same logic in Python, the reference, used when this module is not built).
 *
 * Why native: analysing a recent-change event in Python is ~150 us, a third of it tokenizing
 * (the general path's regex split and per-segment tests on every parsedcomment, which always
 * holds a U+200E), two thirds the walk (a Python call, several dict look-ups and appends per
 * value).  Here a text is one pass over its characters and a document one pass over its values.
 *
 * tokens(text) is analysis.py's python_tokens(text): for ASCII text its _ASCII_WORD scan, else its
 * general path, which takes UAX#29 word boundaries from the regex package: word_boundary() below
 * has the rules of UAX#29 as regex applies them, on the Word_Break values of _analysis_tables.h,
 * generated from regex's data (python setup.py analysis_tables).
 * Then, as the Python path: a skin-tone modifier after a non-emoji starts a segment, runs of
 * South-East Asian segments are merged, segments without a letter, digit or emoji are dropped,
 * tokens are lowercased code point by code point (Python's simple mapping, which is the Python
 * path's) and cut into pieces of 255 characters.
 *
 * analyse(document, plan, tokens, keywords, numbers, dates, booleans, present) is fields.py's
 * _walk_plan: the plan is the field model's per-path decisions (fields.py: build_plan), the
 * dicts and the set those of the AnalysedDoc.  What is rare (a number in a text field, a string in
 * a long field, a date that is not ISO 8601 in ASCII, a non-dict Mapping) is handed to the Python
 * helpers given to configure(), so both paths give the same answers by construction.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_analysis_tables.h"

#define MAX_TOKEN_LENGTH 255
#define STACK_CHARS 512 /* texts up to this long are tokenized without a heap allocation */

/* --- character properties ------------------------------------------------------------------- */

static inline unsigned props_of(Py_UCS4 c) {
    if (c > 0x10FFFF) return 0;
    return at_values[at_stage2[((unsigned)at_stage1[c >> AT_SHIFT] << AT_SHIFT) | (c & ((1u << AT_SHIFT) - 1))]];
}

#define WB(p) ((p) & 31)

static inline int is_ahletter(unsigned wb) { return wb == WB_ALETTER || wb == WB_HEBREW_LETTER; }
static inline int is_midnumletq(unsigned wb) { return wb == WB_MIDNUMLET || wb == WB_SINGLE_QUOTE; }
static inline int is_newline(unsigned wb) { return wb == WB_NEWLINE || wb == WB_CR || wb == WB_LF; }
static inline int is_ignorable(unsigned wb) { return wb == WB_EXTEND || wb == WB_FORMAT || wb == WB_ZWJ; }

/* --- tokenizer ---------------------------------------------------------------------------------- */

/* Tokens repeat (wiki names, domains, HTML words): a direct-mapped table of the strings last made
 * saves making them again, and their hash (kept in the str) when they become dict keys. */
#define CACHE_SLOTS 2048
#define CACHE_MAX_LENGTH 40 /* longer tokens are mostly unique */
static PyObject *token_cache[CACHE_SLOTS];

static inline uint32_t hash_step(uint32_t h, Py_UCS4 c) { return (h ^ c) * 16777619u; }

/* A str of the code points `chars[0:len]` (lowercased already), from the table if it holds it. */
static PyObject *token_of_ucs4(const Py_UCS4 *chars, Py_ssize_t len) {
    if (len > CACHE_MAX_LENGTH) return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, chars, len);
    uint32_t h = 2166136261u;
    for (Py_ssize_t k = 0; k < len; k++) h = hash_step(h, chars[k]);
    PyObject **slot = &token_cache[(h ^ (uint32_t)len) & (CACHE_SLOTS - 1)];
    PyObject *held = *slot;
    if (held && PyUnicode_GET_LENGTH(held) == len) {
        int kind = PyUnicode_KIND(held);
        const void *data = PyUnicode_DATA(held);
        Py_ssize_t k = 0;
        while (k < len && PyUnicode_READ(kind, data, k) == chars[k]) k++;
        if (k == len) {
            Py_INCREF(held);
            return held;
        }
    }
    PyObject *token = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, chars, len);
    if (!token) return NULL;
    Py_INCREF(token);
    Py_XSETREF(*slot, token);
    return token;
}

/* The same for ASCII bytes, lowercased here. */
static PyObject *token_of_ascii(const unsigned char *chars, Py_ssize_t len) {
    unsigned char lowered[MAX_TOKEN_LENGTH];
    uint32_t h = 2166136261u;
    for (Py_ssize_t k = 0; k < len; k++) {
        unsigned char c = chars[k];
        lowered[k] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
        h = hash_step(h, lowered[k]);
    }
    PyObject **slot = len <= CACHE_MAX_LENGTH ? &token_cache[(h ^ (uint32_t)len) & (CACHE_SLOTS - 1)] : NULL;
    if (slot && *slot && PyUnicode_GET_LENGTH(*slot) == len && PyUnicode_IS_ASCII(*slot)
        && memcmp(PyUnicode_1BYTE_DATA(*slot), lowered, (size_t)len) == 0) {
        Py_INCREF(*slot);
        return *slot;
    }
    PyObject *token = PyUnicode_New(len, 127);
    if (!token) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(token), lowered, (size_t)len);
    if (slot) {
        Py_INCREF(token);
        Py_XSETREF(*slot, token);
    }
    return token;
}

/* Where tokens go: appended to a list (tokens()), or straight into a text field's postings, token ->
 * positions, from position `next` on (the walk). */
typedef struct {
    PyObject *list;
    PyObject *postings;
    Py_ssize_t next;
} Sink;

static int append_at(PyObject *d, PyObject *key, PyObject *value);

/* Puts `token` (a new reference, or NULL on an error) into `out`. */
static int append_new(Sink *out, PyObject *token) {
    if (!token) return -1;
    int failed;
    if (out->list) {
        failed = PyList_Append(out->list, token);
    } else {
        PyObject *position = PyLong_FromSsize_t(out->next++);
        failed = !position || append_at(out->postings, token, position);
        Py_XDECREF(position);
    }
    Py_DECREF(token);
    return failed ? -1 : 0;
}

/* Appends `text[start:end]` (already lowercased, UCS4) to `out`, cut into pieces of 255. */
static int emit_ucs4(Sink *out, const Py_UCS4 *text, Py_ssize_t start, Py_ssize_t end) {
    while (start < end) {
        Py_ssize_t stop = end - start > MAX_TOKEN_LENGTH ? start + MAX_TOKEN_LENGTH : end;
        if (append_new(out, token_of_ucs4(text + start, stop - start))) return -1;
        start = stop;
    }
    return 0;
}

static inline int ascii_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
static inline int ascii_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline int ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* analysis.py's _ascii_tokens: runs of [a-z0-9_], joined by ':' '.' "'" between two letters and by
 * '.' ',' ';' "'" between two digits; runs of '_' alone dropped. */
static int ascii_tokens(const unsigned char *s, Py_ssize_t n, Sink *out) {
    Py_ssize_t i = 0;
    while (i < n) {
        if (!ascii_word(s[i])) { i++; continue; }
        Py_ssize_t start = i;
        int underscores_only = 1;
        for (;;) {
            while (i < n && ascii_word(s[i])) {
                if (s[i] != '_') underscores_only = 0;
                i++;
            }
            if (i + 1 < n) {
                unsigned char prev = s[i - 1], join = s[i], next = s[i + 1];
                if ((ascii_alpha(prev) && ascii_alpha(next) && (join == ':' || join == '.' || join == '\''))
                    || (ascii_digit(prev) && ascii_digit(next) && (join == '.' || join == ',' || join == ';' || join == '\''))) {
                    i++;
                    continue;
                }
            }
            break;
        }
        if (underscores_only) continue;
        for (Py_ssize_t piece = start; piece < i; piece += MAX_TOKEN_LENGTH) {
            Py_ssize_t len = i - piece > MAX_TOKEN_LENGTH ? MAX_TOKEN_LENGTH : i - piece;
            if (append_new(out, token_of_ascii(s + piece, len))) return -1;
        }
    }
    return 0;
}

/* Scratch arrays of the general path, on the stack for short texts. */
typedef struct {
    Py_UCS4 *cp;       /* the characters, then lowercased in place */
    uint16_t *pr;      /* their properties */
    uint8_t *brk;      /* brk[i]: a segment starts at i (i in 0..n) */
    int32_t *skip;     /* skip[i]: the last index <= i whose Word_Break is not Extend/Format/ZWJ, or -1 */
    int32_t *next;     /* next[i]: the first index >= i whose Word_Break is not Extend/Format/ZWJ, or n */
    int32_t *ri;       /* ri[i]: how many Regional_Indicators end at i, Extend/Format/ZWJ between them ignored */
    void *heap;
} Scratch;

static int scratch_init(Scratch *s, Py_ssize_t n, void *stack, size_t stack_bytes) {
    size_t need = (size_t)n * (sizeof(Py_UCS4) + sizeof(uint16_t) + 3 * sizeof(int32_t)) + (size_t)n + 1 + 16;
    char *base;
    s->heap = NULL;
    if (need <= stack_bytes) {
        base = stack;
    } else {
        s->heap = PyMem_Malloc(need);
        if (!s->heap) { PyErr_NoMemory(); return -1; }
        base = s->heap;
    }
    s->cp = (Py_UCS4 *)base;
    s->skip = (int32_t *)(s->cp + n);
    s->next = s->skip + n;
    s->ri = s->next + n;
    s->pr = (uint16_t *)(s->ri + n);
    s->brk = (uint8_t *)(s->pr + n);
    return 0;
}

/* Whether regex's (?V1w)\b holds between text[i-1] and text[i], 0 < i < n: UAX#29's default word
 * boundaries.  WB4 as the rules read: a character followed by Extend/Format/ZWJ characters stands
 * for them all in the rules after WB4 (those at the start of the text, or after a newline, stand
 * alone, and match none of those rules). */
static int word_boundary(const Scratch *s, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t left = i - 1, right = i;
    unsigned lp = WB(s->pr[left]), rp = WB(s->pr[right]);
    if (lp == WB_CR && rp == WB_LF) return 0;                          /* WB3 */
    if (is_newline(lp) || is_newline(rp)) return 1;                    /* WB3a, WB3b */
    if (lp == WB_ZWJ && (s->pr[right] & AT_EXTPICT)) return 0;         /* WB3c */
    if (lp == WB_WSEGSPACE && rp == WB_WSEGSPACE) return 0;            /* WB3d */
    if (is_ignorable(rp)) return 0;                                    /* WB4 */
    left = s->skip[left];
    if (left < 0) return 1;                                            /* only Extend/Format/ZWJ since the start */
    lp = WB(s->pr[left]);
    const unsigned none = 0xFF;
    Py_ssize_t after = right + 1 < n ? s->next[right + 1] : n;
    Py_ssize_t before = left >= 1 ? s->skip[left - 1] : -1;
    unsigned rr = after < n ? WB(s->pr[after]) : none;
    unsigned ll = before >= 0 ? WB(s->pr[before]) : none;
    if (is_ahletter(lp) && is_ahletter(rp)) return 0;                  /* WB5 */
    if (is_ahletter(lp) && (rp == WB_MIDLETTER || is_midnumletq(rp)) && rr != none && is_ahletter(rr)) return 0; /* WB6 */
    if (ll != none && is_ahletter(ll) && (lp == WB_MIDLETTER || is_midnumletq(lp)) && is_ahletter(rp)) return 0; /* WB7 */
    if (lp == WB_HEBREW_LETTER && rp == WB_SINGLE_QUOTE) return 0;     /* WB7a */
    if (lp == WB_HEBREW_LETTER && rp == WB_DOUBLE_QUOTE && rr == WB_HEBREW_LETTER) return 0; /* WB7b */
    if (ll == WB_HEBREW_LETTER && lp == WB_DOUBLE_QUOTE && rp == WB_HEBREW_LETTER) return 0; /* WB7c */
    if (lp == WB_NUMERIC && rp == WB_NUMERIC) return 0;                /* WB8 */
    if (is_ahletter(lp) && rp == WB_NUMERIC) return 0;                 /* WB9 */
    if (lp == WB_NUMERIC && is_ahletter(rp)) return 0;                 /* WB10 */
    if (ll == WB_NUMERIC && (lp == WB_MIDNUM || is_midnumletq(lp)) && rp == WB_NUMERIC) return 0; /* WB11 */
    if (lp == WB_NUMERIC && (rp == WB_MIDNUM || is_midnumletq(rp)) && rr == WB_NUMERIC) return 0; /* WB12 */
    if (lp == WB_KATAKANA && rp == WB_KATAKANA) return 0;              /* WB13 */
    if ((is_ahletter(lp) || lp == WB_NUMERIC || lp == WB_KATAKANA || lp == WB_EXTENDNUMLET) && rp == WB_EXTENDNUMLET)
        return 0;                                                      /* WB13a */
    if (lp == WB_EXTENDNUMLET && (is_ahletter(rp) || rp == WB_NUMERIC || rp == WB_KATAKANA)) return 0; /* WB13b */
    if (lp == WB_REGIONAL_INDICATOR && rp == WB_REGIONAL_INDICATOR && s->ri[left] % 2 == 1) return 0; /* WB15, WB16 */
    return 1;                                                          /* WB999 */
}

/* analysis.py's _is_token: all letters (str.isalpha), all decimal digits, or not all white space
 * and holding a letter, digit, ideograph or emoji (_KEEP). */
static int is_token(const Scratch *s, Py_ssize_t start, Py_ssize_t end) {
    int alpha = 1, decimal = 1, space = 1, keep = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        Py_UCS4 c = s->cp[i];
        if (c < 128) { /* most of the general path's text is ASCII too (HTML around a few other characters) */
            if (alpha && !ascii_alpha((unsigned char)c)) alpha = 0;
            if (decimal && !ascii_digit((unsigned char)c)) decimal = 0;
            if (space && !(c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F))) space = 0;
        } else {
            if (alpha && !Py_UNICODE_ISALPHA(c)) alpha = 0;
            if (decimal && !Py_UNICODE_ISDECIMAL(c)) decimal = 0;
            if (space && !Py_UNICODE_ISSPACE(c)) space = 0;
        }
        if (s->pr[i] & AT_KEEP) keep = 1;
    }
    return alpha || decimal || (!space && keep);
}

static inline int is_southeast_asian(const Scratch *s, Py_ssize_t start, Py_ssize_t end) {
    int any = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        if (s->pr[i] & AT_SA) any = 1;
        else if (!(s->pr[i] & AT_MARK)) return 0;
    }
    return any;
}

/* analysis.py's general_tokens. */
static int general_tokens(PyObject *text, Py_ssize_t n, Sink *out) {
    char stack[STACK_CHARS * 20 + 32] __attribute__((aligned(8)));
    Scratch s;
    if (scratch_init(&s, n, stack, sizeof stack)) return -1;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    unsigned seen = 0;
    int32_t last = -1, run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        unsigned p = props_of(c);
        s.cp[i] = c;
        s.pr[i] = (uint16_t)p;
        seen |= p;
        if (!is_ignorable(WB(p))) {
            last = (int32_t)i;
            run = WB(p) == WB_REGIONAL_INDICATOR ? run + 1 : 0;
        }
        s.skip[i] = last;
        s.ri[i] = run;
    }
    for (Py_ssize_t i = n - 1, first = n; i >= 0; i--) {
        if (!is_ignorable(WB(s.pr[i]))) first = i;
        s.next[i] = (int32_t)first;
    }
    s.brk[0] = s.brk[n] = 1;
    for (Py_ssize_t i = 1; i < n; i++) s.brk[i] = (uint8_t)word_boundary(&s, n, i);
    if (seen & AT_EMOD) {
        /* _LONE_MODIFIER: a modifier not after an emoji, a modifier, U+FE0F or a ZWJ starts a segment. */
        for (Py_ssize_t i = 1; i < n; i++) {
            if (!s.brk[i] && (s.pr[i] & AT_EMOD)) {
                Py_UCS4 prev = s.cp[i - 1];
                if (!(s.pr[i - 1] & (AT_EXTPICT | AT_EMOD)) && prev != 0xFE0F && prev != 0x200D) s.brk[i] = 1;
            }
        }
    }
    if (seen & AT_SA) {
        /* A run of segments each all South-East Asian characters (or marks) is one segment. */
        int previous_sa = 0;
        Py_ssize_t start = 0;
        for (Py_ssize_t i = 1; i <= n; i++) {
            if (!s.brk[i]) continue;
            int sa = is_southeast_asian(&s, start, i);
            if (sa && previous_sa) s.brk[start] = 0;
            previous_sa = sa;
            start = i;
        }
    }
    int failed = 0;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 1; i <= n && !failed; i++) {
        if (!s.brk[i]) continue;
        if (is_token(&s, start, i)) { /* tested on the original characters, then lowercased in place */
            for (Py_ssize_t k = start; k < i; k++) {
                Py_UCS4 c = s.cp[k];
                s.cp[k] = c < 128 ? ((c >= 'A' && c <= 'Z') ? c + 32 : c) : Py_UNICODE_TOLOWER(c);
            }
            failed = emit_ucs4(out, s.cp, start, i);
        }
        start = i;
    }
    PyMem_Free(s.heap);
    return failed;
}

/* The tokens of `text` put into `out`. */
static int tokenize(PyObject *text, Sink *out) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0) return 0;
    if (PyUnicode_IS_ASCII(text)) return ascii_tokens(PyUnicode_1BYTE_DATA(text), n, out);
    if (n > INT32_MAX) { PyErr_SetString(PyExc_OverflowError, "text too long"); return -1; }
    return general_tokens(text, n, out);
}

static PyObject *py_tokens(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "tokens() takes a str");
        return NULL;
    }
    Sink out = {PyList_New(0), NULL, 0};
    if (!out.list) return NULL;
    if (tokenize(text, &out)) { Py_DECREF(out.list); return NULL; }
    return out.list;
}

static PyObject *py_lowercase(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "lowercase() takes a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_UCS4 *buf = PyMem_Malloc(sizeof(Py_UCS4) * (n ? n : 1));
    if (!buf) return PyErr_NoMemory();
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) buf[i] = Py_UNICODE_TOLOWER(PyUnicode_READ(kind, data, i));
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n);
    PyMem_Free(buf);
    return out;
}

static PyObject *py_char_properties(PyObject *self, PyObject *arg) {
    unsigned long c = PyLong_AsUnsignedLong(arg);
    if (c == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (c > 0x10FFFF) {
        PyErr_SetString(PyExc_ValueError, "not a code point");
        return NULL;
    }
    return PyLong_FromUnsignedLong(props_of((Py_UCS4)c));
}

/* --- dates -------------------------------------------------------------------------------------- */

static int two_digits(const unsigned char *s, Py_ssize_t n, Py_ssize_t *i, int *out) {
    if (*i + 2 > n || !ascii_digit(s[*i]) || !ascii_digit(s[*i + 1])) return 0;
    *out = (s[*i] - '0') * 10 + (s[*i + 1] - '0');
    *i += 2;
    return 1;
}

static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

/* fields.py's parse_date on an ASCII string of _DATE's form: 1 with *millis set, 0 where it gives
 * None, -1 where the Python function is to decide (not of that form, or at the ends of datetime's
 * range, where its arithmetic overflows). */
static int fast_date(const unsigned char *s, Py_ssize_t n, long long *millis) {
    Py_ssize_t i = 0;
    int hi, lo, month = 1, day = 1, hour = 0, minute = 0, second = 0, ms = 0, offset = 0;
    if (!two_digits(s, n, &i, &hi) || !two_digits(s, n, &i, &lo)) return -1;
    int year = hi * 100 + lo;
    if (i < n) {
        if (s[i] != '-') return -1;
        i++;
        if (!two_digits(s, n, &i, &month)) return -1;
        if (i < n) {
            if (s[i] != '-') return -1;
            i++;
            if (!two_digits(s, n, &i, &day)) return -1;
            if (i < n) {
                if (s[i] != 'T') return -1;
                i++;
                if (!two_digits(s, n, &i, &hour)) return -1;
                if (i < n && s[i] == ':') {
                    i++;
                    if (!two_digits(s, n, &i, &minute)) return -1;
                    if (i < n && s[i] == ':') {
                        i++;
                        if (!two_digits(s, n, &i, &second)) return -1;
                        if (i < n && (s[i] == '.' || s[i] == ',')) {
                            i++;
                            Py_ssize_t digits = 0;
                            int scale = 100;
                            while (i < n && ascii_digit(s[i]) && digits < 9) {
                                if (digits < 3) { ms += (s[i] - '0') * scale; scale /= 10; }
                                i++;
                                digits++;
                            }
                            if (digits == 0) return -1;
                        }
                    }
                }
                if (i < n) {
                    if (s[i] == 'Z') {
                        i++;
                    } else if (s[i] == '+' || s[i] == '-') {
                        int sign = s[i] == '-' ? -1 : 1, oh, om = 0;
                        i++;
                        if (!two_digits(s, n, &i, &oh)) return -1;
                        if (i < n) {
                            Py_ssize_t j = i + (s[i] == ':');
                            if (two_digits(s, n, &j, &om)) i = j;
                            else om = 0;
                        }
                        if (i != n) return -1;
                        if (oh > 18 || om > 59) return 0;
                        offset = sign * (oh * 3600 + om * 60);
                    } else {
                        return -1;
                    }
                }
            }
        }
    }
    if (i != n) return -1;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59
        || second > 59)
        return 0; /* datetime() raises ValueError: None */
    if (year == 1 || year == 9999) return -1;
    long long seconds = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hour * 3600 + minute * 60 + second;
    *millis = (seconds - offset) * 1000 + ms;
    return 1;
}

/* --- the walk ----------------------------------------------------------------------------------- */

enum { K_SKIP = 0, K_TEXT, K_KEYWORD, K_LONG, K_FLOAT, K_DATE, K_BOOLEAN, K_OBJECT };
/* A plan node: (kind, path, chain: path and its ancestors, keyword path or None, ignore_above, children). */
enum { N_KIND, N_PATH, N_CHAIN, N_KEYWORD, N_LIMIT, N_CHILDREN };

static PyObject *h_text_of, *h_parse_long, *h_parse_float, *h_parse_date, *h_parse_boolean, *h_is_object, *h_within;
static long position_gap = 100;

typedef struct {
    PyObject *tokens, *keywords, *numbers, *dates, *booleans, *present, *text_next;
} Doc;

static int walk_object(PyObject *obj, PyObject *children, Doc *doc);

/* fields.py's _is_object: 1, 0, or -1 on an error. */
static int is_object(PyObject *value) {
    if (PyDict_Check(value)) return 1;
    if (PyUnicode_Check(value) || PyLong_Check(value) || PyFloat_Check(value) || PyList_Check(value)) return 0;
    PyObject *answer = PyObject_CallOneArg(h_is_object, value);
    if (!answer) return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

/* d.setdefault(key, []).append(value), one look-up: the empty list offered is kept for the next
 * call when d has the key already.  (Taken out of the static while in use: making a list can run a
 * garbage collection, and a finalizer another thread's walk.) */
static PyObject *spare_list;

static int append_at(PyObject *d, PyObject *key, PyObject *value) {
    PyObject *offer = spare_list;
    spare_list = NULL;
    if (!offer && !(offer = PyList_New(0))) return -1;
    PyObject *list = PyDict_SetDefault(d, key, offer);
    if (list == offer || !list) {
        Py_DECREF(offer); /* d holds it now, or failed */
    } else if (!spare_list) {
        spare_list = offer;
    } else {
        Py_DECREF(offer);
    }
    return list ? PyList_Append(list, value) : -1;
}

static int mark_present(PyObject *node, Doc *doc) {
    PyObject *chain = PyTuple_GET_ITEM(node, N_CHAIN);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(chain); i++)
        if (PySet_Add(doc->present, PyTuple_GET_ITEM(chain, i))) return -1;
    return 0;
}

/* fields.py's within: 1, 0, or -1 on an error. */
static int within(PyObject *text, PyObject *limit) {
    if (limit == Py_None) return 1;
    if (PyLong_CheckExact(limit)) {
        int overflow;
        long long most = PyLong_AsLongLongAndOverflow(limit, &overflow);
        if (!overflow && !(most == -1 && PyErr_Occurred())) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(text);
            long long units = n;
            if (units > most) return 0;
            if (2 * units <= most) return 1;
            if (PyUnicode_KIND(text) == PyUnicode_4BYTE_KIND) {
                const Py_UCS4 *data = PyUnicode_4BYTE_DATA(text);
                for (Py_ssize_t i = 0; i < n; i++) units += data[i] > 0xFFFF;
            }
            return units <= most;
        }
        PyErr_Clear();
    }
    PyObject *answer = PyObject_CallFunctionObjArgs(h_within, text, limit, NULL);
    if (!answer) return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

static int add_text(PyObject *item, PyObject *node, Doc *doc, int kind) {
    PyObject *text;
    if (PyUnicode_Check(item)) {
        text = item;
        Py_INCREF(text);
    } else {
        text = PyObject_CallOneArg(h_text_of, item);
        if (!text) return -1;
        if (!PyUnicode_Check(text)) {
            Py_DECREF(text);
            PyErr_SetString(PyExc_TypeError, "text_of() gave no str");
            return -1;
        }
    }
    PyObject *path = PyTuple_GET_ITEM(node, N_PATH);
    int failed = -1;
    if (kind == K_KEYWORD) {
        int keep = within(text, PyTuple_GET_ITEM(node, N_LIMIT));
        if (keep < 0) goto done;
        if (keep && (append_at(doc->keywords, path, text) || mark_present(node, doc))) goto done;
        failed = 0;
        goto done;
    }
    Py_ssize_t start = 0;
    PyObject *next = PyDict_GetItemWithError(doc->text_next, path), *postings;
    if (next) {
        start = PyLong_AsSsize_t(next);
        if (start == -1 && PyErr_Occurred()) goto done;
        start += position_gap;
    } else if (PyErr_Occurred()) {
        goto done;
    }
    postings = PyDict_GetItemWithError(doc->tokens, path);
    if (!postings) {
        if (PyErr_Occurred()) goto done;
        postings = PyDict_New();
        if (!postings) goto done;
        int set_failed = PyDict_SetItem(doc->tokens, path, postings);
        Py_DECREF(postings);
        if (set_failed) goto done;
    }
    Sink sink = {NULL, postings, start};
    if (tokenize(text, &sink)) goto done;
    PyObject *following = PyLong_FromSsize_t(sink.next);
    if (!following) goto done;
    int set_failed = PyDict_SetItem(doc->text_next, path, following);
    Py_DECREF(following);
    if (set_failed || mark_present(node, doc)) goto done;
    PyObject *keyword_path = PyTuple_GET_ITEM(node, N_KEYWORD);
    if (keyword_path != Py_None) {
        int keep = within(text, PyTuple_GET_ITEM(node, N_LIMIT));
        if (keep < 0) goto done;
        if (keep && (append_at(doc->keywords, keyword_path, text) || PySet_Add(doc->present, keyword_path)))
            goto done;
    }
    failed = 0;
done:
    Py_DECREF(text);
    return failed;
}

/* Appends `value` (a new reference, or NULL on an error; None: nothing) to `d[path]`, marking the
 * node's fields present. */
static int add_parsed(PyObject *value, PyObject *d, PyObject *node, Doc *doc) {
    if (!value) return -1;
    int failed = 0;
    if (value != Py_None)
        failed = append_at(d, PyTuple_GET_ITEM(node, N_PATH), value) || mark_present(node, doc);
    Py_DECREF(value);
    return failed ? -1 : 0;
}

static int add_value(PyObject *item, PyObject *node, Doc *doc) {
    if (item == Py_None) return 0;
    if (PyList_Check(item)) { /* nested arrays are flattened */
        if (Py_EnterRecursiveCall(" while analysing a document")) return -1;
        int failed = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(item) && !failed; i++) {
            PyObject *sub = PyList_GET_ITEM(item, i);
            Py_INCREF(sub);
            failed = add_value(sub, node, doc);
            Py_DECREF(sub);
        }
        Py_LeaveRecursiveCall();
        return failed;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(node, N_KIND));
    int object = is_object(item);
    if (object < 0) return -1;
    if (kind == K_OBJECT) {
        if (!object) return 0;
        if (PyTuple_GET_ITEM(node, N_CHILDREN) == Py_None) {
            PyErr_SetString(PyExc_TypeError, "analyse(): an object node without children");
            return -1;
        }
        if (Py_EnterRecursiveCall(" while analysing a document")) return -1;
        int failed = walk_object(item, PyTuple_GET_ITEM(node, N_CHILDREN), doc);
        Py_LeaveRecursiveCall();
        return failed;
    }
    if (object) return 0;
    switch (kind) {
    case K_TEXT:
    case K_KEYWORD:
        return add_text(item, node, doc, (int)kind);
    case K_LONG:
        if (PyLong_CheckExact(item)) {
            int overflow;
            long long value = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (value == -1 && PyErr_Occurred()) return -1;
            if (overflow) return 0;
            Py_INCREF(item);
            return add_parsed(item, doc->numbers, node, doc);
        }
        return add_parsed(PyObject_CallOneArg(h_parse_long, item), doc->numbers, node, doc);
    case K_FLOAT:
        if (PyFloat_CheckExact(item)) {
            double value = PyFloat_AS_DOUBLE(item);
            if (isnan(value)) return 0;
            return add_parsed(PyFloat_FromDouble((double)(float)value), doc->numbers, node, doc);
        }
        return add_parsed(PyObject_CallOneArg(h_parse_float, item), doc->numbers, node, doc);
    case K_DATE:
        if (PyUnicode_Check(item) && PyUnicode_IS_ASCII(item)) {
            long long millis;
            int parsed = fast_date(PyUnicode_1BYTE_DATA(item), PyUnicode_GET_LENGTH(item), &millis);
            if (parsed == 0) return 0;
            if (parsed == 1) return add_parsed(PyLong_FromLongLong(millis), doc->dates, node, doc);
        }
        return add_parsed(PyObject_CallOneArg(h_parse_date, item), doc->dates, node, doc);
    case K_BOOLEAN:
        if (item == Py_True || item == Py_False) {
            Py_INCREF(item);
            return add_parsed(item, doc->booleans, node, doc);
        }
        if (PyUnicode_Check(item)) {
            if (PyUnicode_CompareWithASCIIString(item, "true") == 0) {
                Py_INCREF(Py_True);
                return add_parsed(Py_True, doc->booleans, node, doc);
            }
            if (PyUnicode_GET_LENGTH(item) == 0 || PyUnicode_CompareWithASCIIString(item, "false") == 0) {
                Py_INCREF(Py_False);
                return add_parsed(Py_False, doc->booleans, node, doc);
            }
            return 0;
        }
        return add_parsed(PyObject_CallOneArg(h_parse_boolean, item), doc->booleans, node, doc);
    default:
        return 0;
    }
}

static int walk_pair(PyObject *key, PyObject *value, PyObject *children, Doc *doc) {
    PyObject *node = PyDict_GetItemWithError(children, key);
    if (!node) return PyErr_Occurred() ? -1 : 0;
    /* (the node's items are read unchecked below: a plan is fields.py's, but checked once here) */
    if (!PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) != 6 || !PyLong_CheckExact(PyTuple_GET_ITEM(node, N_KIND))
        || !PyUnicode_Check(PyTuple_GET_ITEM(node, N_PATH)) || !PyTuple_CheckExact(PyTuple_GET_ITEM(node, N_CHAIN))
        || (PyTuple_GET_ITEM(node, N_KEYWORD) != Py_None && !PyUnicode_Check(PyTuple_GET_ITEM(node, N_KEYWORD)))
        || (PyTuple_GET_ITEM(node, N_CHILDREN) != Py_None && !PyDict_Check(PyTuple_GET_ITEM(node, N_CHILDREN)))) {
        PyErr_SetString(PyExc_TypeError, "analyse(): not a plan node (fields.build_plan)");
        return -1;
    }
    return add_value(value, node, doc);
}

static int walk_object(PyObject *obj, PyObject *children, Doc *doc) {
    if (PyDict_CheckExact(obj)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(obj, &pos, &key, &value)) {
            Py_INCREF(key);
            Py_INCREF(value);
            int failed = walk_pair(key, value, children, doc);
            Py_DECREF(key);
            Py_DECREF(value);
            if (failed) return -1;
        }
        return 0;
    }
    /* a dict subclass or another Mapping: its items(), as the Python walk reads it */
    PyObject *items = PyObject_CallMethod(obj, "items", NULL);
    if (!items) return -1;
    PyObject *iterator = PyObject_GetIter(items);
    Py_DECREF(items);
    if (!iterator) return -1;
    PyObject *pair;
    int failed = 0;
    while (!failed && (pair = PyIter_Next(iterator))) {
        PyObject *key, *value;
        if (!PyArg_ParseTuple(pair, "OO", &key, &value)) failed = -1;
        else failed = walk_pair(key, value, children, doc);
        Py_DECREF(pair);
    }
    Py_DECREF(iterator);
    return failed || PyErr_Occurred() ? -1 : 0;
}

static PyObject *py_analyse(PyObject *self, PyObject *args) {
    PyObject *document, *plan;
    Doc doc;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!O!O!", &document, &PyDict_Type, &plan, &PyDict_Type, &doc.tokens,
                          &PyDict_Type, &doc.keywords, &PyDict_Type, &doc.numbers, &PyDict_Type, &doc.dates,
                          &PyDict_Type, &doc.booleans, &PySet_Type, &doc.present))
        return NULL;
    if (!h_text_of) {
        PyErr_SetString(PyExc_RuntimeError, "_analysis.configure() was not called");
        return NULL;
    }
    int object = is_object(document);
    if (object < 0) return NULL;
    if (!object) Py_RETURN_NONE;
    doc.text_next = PyDict_New();
    if (!doc.text_next) return NULL;
    int failed = walk_object(document, plan, &doc);
    Py_DECREF(doc.text_next);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

/* --- would the dynamic mapping add a field? -------------------------------------------------------- */

/* Whether mapping.py's _merge_object would map something new for ``obj`` against ``existing`` (the
 * ``properties`` of the model, as stored): a key (a non-empty string without a dot) not mapped yet
 * holding a value es_type maps or an object, or an object field holding an object with such a key.
 * The Python merge walks every document of every batch; this answers "nothing new" for nearly all
 * of them in a fraction of the time, and only the documents it flags are merged.  1, 0 or -1. */
static int unmapped_object(PyObject *obj, PyObject *existing, PyObject *internal_prefix);

static PyObject *s_properties, *s_type, *s_object;

static int unmapped_item(PyObject *item, PyObject *known) {
    if (item == Py_None) return 0;
    if (PyDict_Check(item)) {
        PyObject *sub = NULL;
        if (known) {
            sub = PyDict_GetItemWithError(known, s_properties);
            if (!sub && PyErr_Occurred()) return -1;
            if (!sub) {
                PyObject *type = PyDict_GetItemWithError(known, s_type);
                if (!type && PyErr_Occurred()) return -1;
                if (type && type != Py_None) {
                    int is_object = PyObject_RichCompareBool(type, s_object, Py_EQ);
                    if (is_object <= 0) return is_object; /* a value field holding an object: a conflict, not new */
                }
            }
        }
        if (!known) return 1; /* a new object field, even an empty one */
        if (!sub) {
            /* an object mapped without properties: new if the object holds anything mappable */
            PyObject *empty = PyDict_New();
            if (!empty) return -1;
            int found = unmapped_object(item, empty, NULL);
            Py_DECREF(empty);
            return found;
        }
        if (!PyDict_Check(sub)) return 1; /* not a mapping this code wrote: let the merge decide */
        if (Py_EnterRecursiveCall(" while mapping a document")) return -1;
        int found = unmapped_object(item, sub, NULL);
        Py_LeaveRecursiveCall();
        return found;
    }
    if (known) return 0;
    /* es_type: booleans, integers, floats and strings are mapped; anything else is left unmapped */
    return PyLong_Check(item) || PyFloat_Check(item) || PyUnicode_Check(item);
}

static int unmapped_object(PyObject *obj, PyObject *existing, PyObject *internal_prefix) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || PyUnicode_GET_LENGTH(key) == 0) continue;
        if (PyUnicode_FindChar(key, '.', 0, PyUnicode_GET_LENGTH(key), 1) != -1) continue;
        if (internal_prefix && PyUnicode_Tailmatch(key, internal_prefix, 0, PY_SSIZE_T_MAX, -1) == 1) continue;
        PyObject *known = PyDict_GetItemWithError(existing, key);
        if (!known && PyErr_Occurred()) return -1;
        if (known && !PyDict_Check(known)) return 1;
        if (known && PyDict_GET_SIZE(known) == 0) known = NULL; /* falsy, as ``existing.get(key) or ...`` reads it */
        int found = 0;
        Py_INCREF(value);
        if (PyList_Check(value)) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value) && !found; i++) found = unmapped_item(PyList_GET_ITEM(value, i), known);
        } else {
            found = unmapped_item(value, known);
        }
        Py_DECREF(value);
        if (found) return found;
    }
    return 0;
}

static PyObject *py_unmapped(PyObject *self, PyObject *args) {
    PyObject *document, *properties, *internal_prefix;
    if (!PyArg_ParseTuple(args, "OO!U", &document, &PyDict_Type, &properties, &internal_prefix)) return NULL;
    if (!PyDict_Check(document)) Py_RETURN_TRUE; /* another Mapping: the Python merge reads it */
    if (!s_properties) {
        s_properties = PyUnicode_InternFromString("properties");
        s_type = PyUnicode_InternFromString("type");
        s_object = PyUnicode_InternFromString("object");
        if (!s_properties || !s_type || !s_object) return NULL;
    }
    int found = unmapped_object(document, properties, internal_prefix);
    if (found < 0) return NULL;
    return PyBool_FromLong(found);
}

static PyObject *py_configure(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"text_of", "parse_long", "parse_float", "parse_date", "parse_boolean", "is_object",
                            "within", "position_gap", NULL};
    PyObject *helpers[7];
    long gap;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOl", names, &helpers[0], &helpers[1], &helpers[2],
                                     &helpers[3], &helpers[4], &helpers[5], &helpers[6], &gap))
        return NULL;
    PyObject **slots[] = {&h_text_of, &h_parse_long, &h_parse_float, &h_parse_date, &h_parse_boolean, &h_is_object,
                          &h_within};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(helpers[i]);
        Py_XSETREF(*slots[i], helpers[i]);
    }
    position_gap = gap;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"tokens", py_tokens, METH_O, "tokens(text) -> list of str: the standard analyzer's tokens (analysis.python_tokens)."},
    {"lowercase", py_lowercase, METH_O, "lowercase(text): each code point by its simple lowercase mapping."},
    {"char_properties", py_char_properties, METH_O,
     "char_properties(code_point) -> int: Word_Break index | flag bits, as _analysis_tables.h holds them."},
    {"analyse", py_analyse, METH_VARARGS,
     "analyse(document, plan, tokens, keywords, numbers, dates, booleans, present): fields.py's _walk_plan."},
    {"unmapped", py_unmapped, METH_VARARGS,
     "unmapped(document, properties, internal_prefix) -> bool: whether mapping_for_documents would map a new field."},
    {"configure", (PyCFunction)(void (*)(void))py_configure, METH_VARARGS | METH_KEYWORDS,
     "configure(text_of, parse_long, parse_float, parse_date, parse_boolean, is_object, within, position_gap)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_analysis", "The embedded percolator's native standard analyzer and document walk.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__analysis(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddStringConstant(m, "REGEX_VERSION", AT_REGEX_VERSION) < 0
        || PyModule_AddIntConstant(m, "EXTPICT", AT_EXTPICT) < 0 || PyModule_AddIntConstant(m, "EMOD", AT_EMOD) < 0
        || PyModule_AddIntConstant(m, "KEEP", AT_KEEP) < 0 || PyModule_AddIntConstant(m, "SA", AT_SA) < 0
        || PyModule_AddIntConstant(m, "MARK", AT_MARK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
