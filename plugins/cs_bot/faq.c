/* plugins/cs_bot/faq.c: reads the FAQ with libyaml's document API (marks
 * give the line of every node, for the error messages) and matches
 * messages against it.
 *
 * Keywords are stored lower-cased, each marked as a plain word (compared
 * with the message's words) or not (looked for as a substring). Matching
 * sorts the message's words once, so a long message against a long FAQ
 * costs a binary search per keyword rather than a scan. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "faq.h"

typedef struct keyword {
    char *text; /* lower case, NUL-terminated */
    size_t len;
    bool word;  /* only word bytes: compared with whole words */
} keyword;

typedef struct entry {
    keyword *kw;
    size_t nkw;
    char *answer; /* one line */
} entry;

struct faq {
    entry *e;
    size_t n;
};

/* A byte of a word. Spelled out rather than isalnum(): the rule is ASCII,
 * whatever the locale, and every byte of a UTF-8 sequence counts. */
static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* A copy of s[0..n) on one line: control bytes become spaces, and the
 * spaces at both ends go. NULL when out of memory. */
static char *one_line(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)*s <= ' ' || *s == 0x7f))
        s++, n--;
    while (n > 0 && ((unsigned char)s[n - 1] <= ' ' || s[n - 1] == 0x7f))
        n--;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < ' ' || s[i] == 0x7f ? ' ' : s[i];
    out[n] = '\0';
    return out;
}

void faq_free(faq *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        for (size_t k = 0; k < f->e[i].nkw; k++)
            free(f->e[i].kw[k].text);
        free(f->e[i].kw);
        free(f->e[i].answer);
    }
    free(f->e);
    free(f);
}

size_t faq_size(const faq *f)
{
    return f ? f->n : 0;
}

/* ---- loading ---- */

typedef struct loader {
    const char *path;
    char *err;
    size_t errlen;
    size_t max_answer;
    yaml_document_t *doc;
} loader;

static int fail_at(loader *l, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(loader *l, unsigned long line, const char *fmt, ...)
{
    int n = snprintf(l->err, l->errlen, "%s:%lu: ", l->path, line);
    if (n >= 0 && (size_t)n < l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static unsigned long line_of(const yaml_node_t *node)
{
    return (unsigned long)node->start_mark.line + 1;
}

/* Adds the keyword s[0..n) (trimmed, lower-cased) to e. */
static int add_keyword(loader *l, entry *e, const yaml_node_t *at, const char *s, size_t n)
{
    char *text = one_line(s, n);
    if (!text)
        return fail_at(l, line_of(at), "out of memory");
    size_t len = strlen(text);
    if (len == 0) {
        free(text);
        return fail_at(l, line_of(at), "a keyword is empty");
    }
    keyword *kw = realloc(e->kw, (e->nkw + 1) * sizeof *kw);
    if (!kw) {
        free(text);
        return fail_at(l, line_of(at), "out of memory");
    }
    e->kw = kw;
    bool word = true;
    for (size_t i = 0; i < len; i++) {
        text[i] = lower(text[i]);
        word = word && is_word_byte((unsigned char)text[i]);
    }
    e->kw[e->nkw++] = (keyword){.text = text, .len = len, .word = word};
    return 0;
}

/* keywords: a sequence of scalars, or one scalar of comma-separated words. */
static int load_keywords(loader *l, entry *e, yaml_node_t *node)
{
    if (node->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)node->data.scalar.value;
        size_t n = node->data.scalar.length;
        if (n == 0)
            return fail_at(l, line_of(node), "keywords is empty");
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && s[i] != ',')
                continue;
            if (add_keyword(l, e, node, s + start, i - start) != 0)
                return -1;
            start = i + 1;
        }
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE)
        return fail_at(l, line_of(node), "keywords must be a list ([hours, open]) or a "
                       "comma-separated string");
    for (yaml_node_item_t *it = node->data.sequence.items.start;
         it < node->data.sequence.items.top; it++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, *it);
        if (!k || k->type != YAML_SCALAR_NODE)
            return fail_at(l, line_of(k ? k : node), "a keyword must be a plain word or phrase");
        if (add_keyword(l, e, k, (const char *)k->data.scalar.value, k->data.scalar.length) != 0)
            return -1;
    }
    if (e->nkw == 0)
        return fail_at(l, line_of(node), "keywords is an empty list");
    return 0;
}

static int load_entry(loader *l, entry *e, yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE)
        return fail_at(l, line_of(node), "an entry must be a mapping with keywords and answer");
    bool have_keywords = false;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        if (!k || !v)
            return fail_at(l, line_of(node), "a broken entry");
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        if (strcmp(key, "keywords") == 0) {
            if (have_keywords)
                return fail_at(l, line_of(k), "keywords given twice");
            have_keywords = true;
            if (load_keywords(l, e, v) != 0)
                return -1;
        } else if (strcmp(key, "answer") == 0) {
            if (e->answer)
                return fail_at(l, line_of(k), "answer given twice");
            if (v->type != YAML_SCALAR_NODE)
                return fail_at(l, line_of(v), "answer must be text");
            e->answer = one_line((const char *)v->data.scalar.value, v->data.scalar.length);
            if (!e->answer)
                return fail_at(l, line_of(v), "out of memory");
            if (!*e->answer)
                return fail_at(l, line_of(v), "answer is empty");
            if (l->max_answer && strlen(e->answer) > l->max_answer)
                return fail_at(l, line_of(v), "answer is %zu bytes, longer than a message may "
                               "be (%zu)", strlen(e->answer), l->max_answer);
        } else {
            return fail_at(l, line_of(k), "unknown key '%.40s' (an entry has keywords and answer)",
                           key);
        }
    }
    if (!have_keywords)
        return fail_at(l, line_of(node), "this entry has no keywords");
    if (!e->answer)
        return fail_at(l, line_of(node), "this entry has no answer");
    return 0;
}

static int load_root(loader *l, faq *f, yaml_node_t *root)
{
    if (root->type != YAML_SEQUENCE_NODE)
        return fail_at(l, line_of(root), "the FAQ must be a list of entries, each "
                       "\"- keywords: [...]\" with an \"answer: ...\"");
    size_t n = (size_t)(root->data.sequence.items.top - root->data.sequence.items.start);
    f->e = calloc(n ? n : 1, sizeof *f->e);
    if (!f->e)
        return fail_at(l, line_of(root), "out of memory");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *node = yaml_document_get_node(l->doc, root->data.sequence.items.start[i]);
        f->n++; /* counted first, so that faq_free frees a half-read entry */
        if (!node || load_entry(l, &f->e[i], node) != 0)
            return node ? -1 : fail_at(l, line_of(root), "a broken entry");
    }
    return 0;
}

/* The line of byte offset in fp, counted from the start. */
static unsigned long line_at_offset(FILE *fp, size_t offset)
{
    unsigned long line = 1;
    rewind(fp);
    for (size_t i = 0; i < offset; i++) {
        int ch = getc(fp);
        if (ch == EOF)
            break;
        line += ch == '\n';
    }
    return line;
}

static int parse_error(loader *l, const yaml_parser_t *p, FILE *fp)
{
    const char *problem = p->problem ? p->problem : "not valid YAML";
    /* The reader (bad UTF-8, a control character) gives an offset, not a
     * mark; the scanner and the parser give a mark. */
    unsigned long line = p->error == YAML_READER_ERROR ? line_at_offset(fp, p->problem_offset)
                                                       : (unsigned long)p->problem_mark.line + 1;
    if (p->context)
        return fail_at(l, line, "%s, %s", problem, p->context);
    return fail_at(l, line, "%s", problem);
}

faq *faq_load(const char *path, size_t max_answer, char *err, size_t errlen)
{
    loader l = {.path = path, .err = err, .errlen = errlen, .max_answer = max_answer};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    faq *f = calloc(1, sizeof *f);
    yaml_parser_t parser;
    if (!f || !yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(f);
        fclose(fp);
        return NULL;
    }
    yaml_parser_set_input_file(&parser, fp);
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        parse_error(&l, &parser, fp);
        goto out;
    }
    l.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    rc = root ? load_root(&l, f, root) : 0; /* no root: an empty file, no entries */
    yaml_document_delete(&doc);
    if (rc == 0 && root) {
        /* A second document would be silently ignored: say so instead. */
        if (!yaml_parser_load(&parser, &doc)) {
            rc = parse_error(&l, &parser, fp);
        } else {
            yaml_node_t *extra = yaml_document_get_root_node(&doc);
            if (extra)
                rc = fail_at(&l, line_of(extra), "a second YAML document: the FAQ is one list");
            yaml_document_delete(&doc);
        }
    }
out:
    yaml_parser_delete(&parser);
    fclose(fp);
    if (rc != 0) {
        faq_free(f);
        return NULL;
    }
    return f;
}

/* ---- matching ---- */

typedef struct span {
    const char *p;
    size_t len;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

static bool contains(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

const char *faq_answer(const faq *f, const char *text, size_t len)
{
    if (!f || f->n == 0 || len == 0)
        return NULL;
    char *low = malloc(len);
    span *words = malloc((len / 2 + 1) * sizeof *words); /* a word and a separator, at least */
    if (!low || !words) {
        free(low);
        free(words);
        return NULL;
    }
    for (size_t i = 0; i < len; i++)
        low[i] = lower(text[i]);
    size_t nw = 0;
    for (size_t i = 0; i < len;) {
        if (!is_word_byte((unsigned char)low[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && is_word_byte((unsigned char)low[i]))
            i++;
        words[nw++] = (span){low + start, i - start};
    }
    qsort(words, nw, sizeof *words, span_cmp);

    const char *best = NULL;
    size_t best_score = 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t score = 0;
        for (size_t k = 0; k < f->e[i].nkw; k++) {
            const keyword *kw = &f->e[i].kw[k];
            span key = {kw->text, kw->len};
            if (kw->word ? bsearch(&key, words, nw, sizeof *words, span_cmp) != NULL
                         : contains(low, len, kw->text, kw->len))
                score++;
        }
        if (score > best_score) { /* strictly: a tie keeps the earlier entry */
            best_score = score;
            best = f->e[i].answer;
        }
    }
    free(low);
    free(words);
    return best;
}
