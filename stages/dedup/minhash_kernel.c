/* The MinHash word kernel of stages/dedup/minhash_core.py, fused in one pass per document
   (from an Arrow column's UTF-8: thr_utf8_word_signatures; from code points:
   thr_word_signatures; both at the end).

   `make install` builds it into stages/dedup/_minhash_kernel.so; stages/dedup/minhash_native.py
   loads it with ctypes. It computes exactly what the numpy path computes (that path is the
   reference, and tests/test_minhash_native.py compares the two on real and crafted text):
   code points through the normalization tables, format characters deleted, words split,
   each word hashed (a polynomial in its code points, mixed with its length), n-word
   shingles, then the minimum of a*x + b (mod 2**64) over a document's shingles for every
   permutation. The numpy path makes a pass over the whole batch per step and per
   permutation; here each document's tokens stay in cache and each shingle meets all
   permutations at once, which the compiler turns into 8-lane AVX-512 (or 4-lane AVX2)
   multiply-add-minimum where the CPU has it (chosen at run time: target_clones).

   All arithmetic is on uint64 modulo 2**64, so every instruction set gives the same bits. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define THR_KERNEL_ABI 4 /* bump with any change of arguments or results */
#ifndef THR_SOURCE
#define THR_SOURCE "unknown" /* the Makefile passes the first 16 hex digits of this file's sha256 */
#endif

enum { WORD = 0, SPACE = 1, PUNCT = 2, FORMAT = 3, DIGIT = 4, SOLO = 5 };
#define UNKNOWN 255 /* the class of a code point not looked up yet */
#define PENDING 254 /* seen by thr_unknown, being looked up by the caller */

#define BASE 0x9E3779B97F4A7C15ULL  /* the word polynomial's base (odd) */
#define LENGTH_MIX 0xD6E8FEB86659FD93ULL
#define SHINGLE_MUL 0x100000001B3ULL
#define EMPTY 0xFFFFFFFFFFFFFFFFULL

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(THR_NO_CLONES)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

int64_t thr_kernel_abi(void) { return THR_KERNEL_ABI; }
const char *thr_kernel_source(void) { return THR_SOURCE; }

static inline uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    x ^= x >> 33;
    return x;
}

/* The distinct code points of raw[0..n) whose class is UNKNOWN, written to out (at most
   cap; they are marked PENDING, so the caller must give each its class). Returns how many
   there are, which may exceed cap: then call again after filling the first cap. */
int64_t thr_unknown(const uint32_t *raw, int64_t n, uint8_t *cls, uint32_t *out, int64_t cap) {
    int64_t found = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t c = raw[i];
        if (cls[c] == UNKNOWN) {
            if (found < cap) {
                out[found] = c;
                cls[c] = PENDING;
            }
            found++;
        }
    }
    return found;
}

/* Each character's full decomposition (the caller's table for NFD or NFKD): decomp[c] is
   the code point itself when it is one (below 0x110000), FORM_EXPANDS | k when it is
   several (exp_cps[exp_off[k]], exp_len[k] of them), FORM_UNKNOWN when not looked up yet
   (the caller fills it with the quick check table, whose thr_unknown finds new code
   points). */
#define FORM_UNKNOWN 0xFFFFFFFFu
#define FORM_EXPANDS 0x80000000u

/* The length of a text after decomposition, or -2 if a code point is not looked up (or its
   expansion is not among the first n_exp). */
int64_t thr_form_length(const uint32_t *raw, int64_t n, const uint32_t *form,
                        const int64_t *exp_len, int64_t n_exp) {
    int64_t len = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t f = form[raw[i]];
        if (f < FORM_EXPANDS) len++;
        else if (f == FORM_UNKNOWN || (int64_t)(f & ~FORM_EXPANDS) >= n_exp) return -2;
        else len += exp_len[f & ~FORM_EXPANDS];
    }
    return len;
}

/* The text decomposed into out (thr_form_length's count long). */
void thr_map_form(const uint32_t *raw, int64_t n, const uint32_t *form, const int64_t *exp_off,
                  const int64_t *exp_len, const uint32_t *exp_cps, uint32_t *out) {
    for (int64_t i = 0; i < n; i++) {
        const uint32_t f = form[raw[i]];
        if (f < FORM_EXPANDS) {
            *out++ = f;
        } else {
            const int64_t k = f & ~FORM_EXPANDS;
            memcpy(out, exp_cps + exp_off[k], (size_t)exp_len[k] * sizeof(uint32_t));
            out += exp_len[k];
        }
    }
}

/* m[p] = min over x in xs of a[p]*x + b[p], for p < num_perm (m starts at EMPTY). */
CLONES static void perm_min(const uint64_t *xs, int64_t count, const uint64_t *a,
                            const uint64_t *b, int64_t num_perm, uint64_t *restrict m) {
    for (int64_t p = 0; p < num_perm; p++) m[p] = EMPTY;
    for (int64_t s = 0; s < count; s++) {
        const uint64_t x = xs[s];
        for (int64_t p = 0; p < num_perm; p++) {
            uint64_t v = a[p] * x + b[p];
            m[p] = v < m[p] ? v : m[p];
        }
    }
}

/* The minima of given shingle hashes: sh holds counts[d] hashes for each document d in
   turn; out is (n_docs, num_perm), EMPTY rows for documents with no shingle. */
void thr_perm_min(const uint64_t *sh, const int64_t *counts, int64_t n_docs, const uint64_t *a,
                  const uint64_t *b, int64_t num_perm, uint64_t *out) {
    for (int64_t d = 0; d < n_docs; d++) {
        perm_min(sh, counts[d], a, b, num_perm, out + d * num_perm);
        sh += counts[d];
    }
}

/* One document's word hashes, appended to *tok (grown as needed); returns the count, -1 if
   out of memory, -2 if a code point has not been looked up. A word is a maximal run of
   non-space characters; a SOLO character is a word by itself; FORMAT characters are
   deleted (they only have that class when the caller's options delete them). */
static int64_t word_hashes(const uint32_t *raw, int64_t len, const uint32_t *cp,
                           const uint8_t *cls, uint64_t **tok, int64_t *cap) {
    int64_t count = 0;
    uint64_t h = 0, pw = 1, wlen = 0;
    int in_word = 0;
#define EMIT()                                                                   \
    do {                                                                         \
        if (count == *cap) {                                                     \
            int64_t grown = *cap ? 2 * *cap : 4096;                              \
            uint64_t *t = realloc(*tok, (size_t)grown * sizeof(uint64_t));       \
            if (!t) return -1;                                                   \
            *tok = t;                                                            \
            *cap = grown;                                                        \
        }                                                                        \
        (*tok)[count++] = fmix64(h + wlen * LENGTH_MIX);                         \
        in_word = 0;                                                             \
    } while (0)
    for (int64_t i = 0; i < len; i++) {
        const uint32_t c = raw[i];
        const int k = cls[c];
        if (k == WORD || k == PUNCT) {  /* PUNCT: kept in words when not made a space */
            if (!in_word) {
                h = 0;
                pw = 1;
                wlen = 0;
                in_word = 1;
            }
            h += (uint64_t)cp[c] * pw;
            pw *= BASE;
            wlen++;
        } else if (k == SPACE) {
            if (in_word) EMIT();
        } else if (k == SOLO) {
            if (in_word) EMIT();
            h = cp[c];
            wlen = 1;
            EMIT();
        } else if (k != FORMAT) {
            return -2;  /* UNKNOWN or PENDING (DIGIT never reaches a table) */
        }
    }
    if (in_word) EMIT();
#undef EMIT
    return count;
}

/* A document's row of minima from its t word hashes: its n-word shingles (one shingle of
   all its words if it has fewer than n, none if it has no word), hashed in place. */
static void shingle_minima(uint64_t *tok, int64_t t, int64_t n, const uint64_t *a,
                           const uint64_t *b, int64_t num_perm, uint64_t *row) {
    const int64_t shingles = t >= n ? t - n + 1 : (t > 0 ? 1 : 0);
    const int64_t width = t >= n ? n : t;
    /* in place: shingle s only reads tokens s..s+width-1, never an overwritten one */
    for (int64_t s = 0; s < shingles; s++) {
        uint64_t h = tok[s];
        for (int64_t j = 1; j < width; j++) h = h * SHINGLE_MUL + tok[s + j];
        tok[s] = fmix64(h);
    }
    perm_min(tok, shingles, a, b, num_perm, row);
}

/* ------------------------------------------------------------------ the normal form

   A document is checked to be in the options' Unicode normal form already by the quick
   check (UAX #15), the common case; else it is normalized here as CPython's unicodedata
   does it (full decomposition by the caller's per-character table, canonical ordering,
   canonical composition by its pair table and Hangul's algorithm). Code points the tables
   do not hold yet are left to the caller (DOC_UNKNOWN), which looks them up and calls
   again. */

#define QC_NOT_YES 253 /* qc[c]: the character's combining class if its quick check is Yes */

enum { DOC_DONE = 0, DOC_NOT_UTF8 = 1, DOC_UNKNOWN = 2 };
enum { FORM_NONE = 0, FORM_DECOMPOSED = 1, FORM_COMPOSED = 2 }; /* none; NFD, NFKD; NFC, NFKC */

/* The code points of s[0..len) into out (room for len); their count, or -1 if the bytes
   are not UTF-8 (overlong forms, surrogates and values past U+10FFFF included). */
static int64_t utf8_decode(const uint8_t *s, int64_t len, uint32_t *out) {
    int64_t i = 0, n = 0;
    while (i < len) {
        uint64_t eight;
        if (i + 8 <= len && (memcpy(&eight, s + i, 8), !(eight & 0x8080808080808080ULL))) {
            for (int j = 0; j < 8; j++) out[n + j] = s[i + j]; /* ASCII, 8 at a time */
            n += 8;
            i += 8;
            continue;
        }
        const uint32_t c = s[i];
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        }
        int k;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return -1;
        if (i + k >= len) return -1;
        for (int j = 1; j <= k; j++) {
            const uint32_t t = s[i + j];
            if ((t & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (t & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
        out[n++] = cp;
        i += k + 1;
    }
    return n;
}

/* The quick check of a whole text: 1 if it says Yes (the text is in the form), 0 if No or
   Maybe, -2 if a code point is not in the table. */
static int quick_check(const uint32_t *cps, int64_t n, const uint8_t *qc) {
    uint8_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t q = qc[cps[i]];
        if (q >= PENDING) return -2;
        if (q == QC_NOT_YES || (q != 0 && last > q)) return 0;
        last = q;
    }
    return 1;
}

/* Canonical ordering in place (a stable insertion sort of each run of non-starters, as
   CPython's nfd_nfkd); every ccc known. */
static void canonical_order(uint32_t *b, int64_t n, const uint8_t *ccc) {
    if (n == 0) return;
    uint8_t prev = ccc[b[0]];
    for (int64_t i = 1; i < n; i++) {
        const uint8_t cur = ccc[b[i]];
        if (prev == 0 || cur == 0 || prev <= cur) {
            prev = cur;
            continue;
        }
        for (int64_t o = i - 1; o >= 0; o--) {
            const uint32_t t = b[o + 1];
            b[o + 1] = b[o];
            b[o] = t;
            if (o == 0) break;
            const uint8_t before = ccc[b[o - 1]];
            if (before == 0 || before <= cur) break;
        }
        prev = ccc[b[i]];
    }
}

/* The primary composite of (first, second), or 0: keys are first << 21 | second, sorted. */
static uint32_t composite(uint32_t first, uint32_t second, const uint64_t *keys,
                          const uint32_t *values, int64_t n_pairs) {
    const uint64_t key = (uint64_t)first << 21 | second;
    int64_t lo = 0, hi = n_pairs;
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (keys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < n_pairs && keys[lo] == key ? values[lo] : 0;
}

#define S_BASE 0xAC00u
#define L_BASE 0x1100u
#define V_BASE 0x1161u
#define T_BASE 0x11A7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u

#define PAIR_FIRST 1  /* pair[c]: c begins some composition pair */
#define PAIR_SECOND 2 /* c ends one */

/* Canonical composition in place, step for step as CPython's nfc_nfkc (skipped[0..n)
   zeroed); returns the new length. */
static int64_t compose(uint32_t *b, int64_t n, const uint8_t *ccc, const uint8_t *pair,
                       const uint64_t *keys, const uint32_t *values, int64_t n_pairs,
                       uint8_t *skipped) {
    int64_t i = 0, o = 0;
    while (i < n) {
        if (skipped[i]) {
            i++;
            continue;
        }
        uint32_t code = b[i];
        if (code - L_BASE < L_COUNT && i + 1 < n && b[i + 1] - V_BASE < V_COUNT) {
            code = S_BASE + ((code - L_BASE) * V_COUNT + (b[i + 1] - V_BASE)) * T_COUNT;
            i += 2;
            if (i < n && b[i] > T_BASE && b[i] < T_BASE + T_COUNT) code += b[i++] - T_BASE;
            b[o++] = code;
            continue;
        }
        if (!(pair[code] & PAIR_FIRST)) {
            b[o++] = code;
            i++;
            continue;
        }
        uint8_t comb = 0;
        for (int64_t i1 = i + 1; i1 < n; i1++) {
            const uint32_t code1 = b[i1];
            const uint8_t comb1 = ccc[code1];
            if (comb) {
                if (comb1 == 0) break;
                if (comb >= comb1) continue; /* blocked */
            }
            const uint32_t c = pair[code1] & PAIR_SECOND
                                   ? composite(code, code1, keys, values, n_pairs) : 0;
            if (!c) {
                if (comb1 == 0) break;
                comb = comb1;
                continue;
            }
            code = c;
            skipped[i1] = 1;
            if (!(pair[code] & PAIR_FIRST)) break;
        }
        b[o++] = code;
        i++;
    }
    return o;
}

static int grow(void **buf, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    void *t = realloc(*buf, (size_t)c * size);
    if (!t) return -1;
    *buf = t;
    *cap = c;
    return 0;
}

/* What a decomposed text b[0..n) still needs: NEEDS_ORDER if its marks are out of
   canonical order, NEEDS_COMPOSE if it holds a character that can end a composition (none:
   composing changes nothing); -2 if a combining class is not in the table. */
#define NEEDS_ORDER 1
#define NEEDS_COMPOSE 2
static int needs(const uint32_t *b, int64_t n, const uint8_t *ccc, const uint8_t *pair) {
    int what = 0;
    uint8_t last = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t c = b[i];
        const uint8_t k = ccc[c];
        if (k >= PENDING) return -2;
        if (k != 0 && last > k) what |= NEEDS_ORDER;
        last = k;
        if ((pair[c] & PAIR_SECOND) || c - V_BASE < V_COUNT) what |= NEEDS_COMPOSE;
    }
    return what;
}

/* The options' normal form and the tables it reads (see thr_utf8_word_signatures). */
struct normal_form {
    int64_t kind;
    const uint8_t *qc;
    const uint32_t *decomp;
    const int64_t *exp_off, *exp_len;
    const uint32_t *exp_cps;
    int64_t n_exp;
    const uint8_t *ccc, *pair;
    const uint64_t *keys;
    const uint32_t *values;
    int64_t n_pairs;
};

#define FORM_PARAMS                                                                      \
    int64_t form_kind, const uint8_t *qc, const uint32_t *decomp, const int64_t *exp_off, \
        const int64_t *exp_len, const uint32_t *exp_cps, int64_t n_exp, const uint8_t *ccc, \
        const uint8_t *pair, const uint64_t *keys, const uint32_t *values, int64_t n_pairs
#define FORM_INIT                                                                        \
    { form_kind, qc, decomp, exp_off, exp_len, exp_cps, n_exp, ccc, pair, keys, values, \
      n_pairs }

/* Buffers reused from document to document of a call. */
struct scratch {
    uint32_t *raw, *norm;
    uint8_t *skipped;
    uint64_t *tok;
    int64_t raw_cap, norm_cap, skipped_cap, tok_cap;
};

static void scratch_free(struct scratch *s) {
    free(s->raw);
    free(s->norm);
    free(s->skipped);
    free(s->tok);
}

/* One document's row of minima from its code points: DOC_DONE, DOC_UNKNOWN, or -1 if out
   of memory. */
static int doc_signature(const uint32_t *text, int64_t len, const struct normal_form *f,
                         const uint32_t *cp, const uint8_t *cls, int64_t n, const uint64_t *a,
                         const uint64_t *b, int64_t num_perm, uint64_t *row,
                         struct scratch *s) {
    if (f->kind != FORM_NONE) {
        const int q = quick_check(text, len, f->qc);
        if (q < 0) return DOC_UNKNOWN;
        if (q == 0) {  /* normalize */
            const int64_t dlen = thr_form_length(text, len, f->decomp, f->exp_len, f->n_exp);
            if (dlen < 0) return DOC_UNKNOWN;
            if (grow((void **)&s->norm, &s->norm_cap, dlen + 1, sizeof(uint32_t)) ||
                grow((void **)&s->skipped, &s->skipped_cap, dlen + 1, 1))
                return -1;
            thr_map_form(text, len, f->decomp, f->exp_off, f->exp_len, f->exp_cps, s->norm);
            const int what = needs(s->norm, dlen, f->ccc, f->pair);
            if (what < 0) return DOC_UNKNOWN;
            if (what & NEEDS_ORDER) canonical_order(s->norm, dlen, f->ccc);
            len = dlen;
            if (f->kind == FORM_COMPOSED && (what & NEEDS_COMPOSE)) {
                memset(s->skipped, 0, (size_t)dlen);
                len = compose(s->norm, dlen, f->ccc, f->pair, f->keys, f->values, f->n_pairs,
                              s->skipped);
            }
            text = s->norm;
        }
    }
    const int64_t t = word_hashes(text, len, cp, cls, &s->tok, &s->tok_cap);
    if (t == -1) return -1;
    if (t < 0) return DOC_UNKNOWN;
    shingle_minima(s->tok, t, n, a, b, num_perm, row);
    return DOC_DONE;
}

/* Signatures of n_docs strings of an Arrow string column: document d is
   data[starts[d]..ends[d]). status[d] says what became of it (DOC_*); out's row d is
   written for DOC_DONE only. form_kind (FORM_*) is what the options ask for; then qc is
   the quick check table of their form, decomp each character's full decomposition under
   it (canonical for NFC and NFD, compatibility for NFKC and NFKD; an expansion past the
   n_exp complete ones counts as unknown), ccc the combining classes, pair/keys/values
   the composition pairs. cp and cls are the normalization tables, n the words per
   shingle. Returns 0, or -1 if out of memory. */
int64_t thr_utf8_word_signatures(const uint8_t *data, const int64_t *starts,
                                 const int64_t *ends, int64_t n_docs, FORM_PARAMS,
                                 const uint32_t *cp, const uint8_t *cls, int64_t n,
                                 const uint64_t *a, const uint64_t *b, int64_t num_perm,
                                 uint64_t *out, uint8_t *status) {
    const struct normal_form f = FORM_INIT;
    struct scratch s = {0};
    int64_t result = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        const int64_t bytes = ends[d] - starts[d];
        if (grow((void **)&s.raw, &s.raw_cap, bytes + 1, sizeof(uint32_t))) {
            result = -1;
            break;
        }
        const int64_t len = utf8_decode(data + starts[d], bytes, s.raw);
        status[d] = DOC_NOT_UTF8;
        if (len < 0) continue;
        const int r = doc_signature(s.raw, len, &f, cp, cls, n, a, b, num_perm,
                                    out + d * num_perm, &s);
        if (r < 0) {
            result = -1;
            break;
        }
        status[d] = (uint8_t)r;
    }
    scratch_free(&s);
    return result;
}

/* As thr_utf8_word_signatures, for code points: document d is raw[starts[d]..ends[d]). */
int64_t thr_word_signatures(const uint32_t *raw, const int64_t *starts, const int64_t *ends,
                            int64_t n_docs, FORM_PARAMS, const uint32_t *cp,
                            const uint8_t *cls, int64_t n, const uint64_t *a,
                            const uint64_t *b, int64_t num_perm, uint64_t *out,
                            uint8_t *status) {
    const struct normal_form f = FORM_INIT;
    struct scratch s = {0};
    int64_t result = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        const int r = doc_signature(raw + starts[d], ends[d] - starts[d], &f, cp, cls, n, a,
                                    b, num_perm, out + d * num_perm, &s);
        if (r < 0) {
            result = -1;
            break;
        }
        status[d] = (uint8_t)r;
    }
    scratch_free(&s);
    return result;
}
