/* interfaces/cli/cli_names.c: a small bounded set of names per kind. A linear
 * search is enough: the set is capped, and it is searched once per name
 * received, not per byte. */
#include "cli_names.h"

#include <stdlib.h>
#include <string.h>

typedef struct name_set {
    char **v;
    size_t n, cap;
} name_set;

struct cli_names {
    name_set sets[2];
};

cli_names *cli_names_new(void)
{
    return calloc(1, sizeof(cli_names));
}

void cli_names_free(cli_names *n)
{
    if (!n)
        return;
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < n->sets[k].n; i++)
            free(n->sets[k].v[i]);
        free(n->sets[k].v);
    }
    free(n);
}

static int plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

void cli_names_add(cli_names *n, cli_name_kind kind, const char *name)
{
    if (!n || !name || !name[0] || !plain(name))
        return;
    name_set *s = &n->sets[kind == CLI_NAME_GROUP];
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return;
    if (s->n >= CLI_NAMES_MAX)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return;
        s->v = v;
        s->cap = cap;
    }
    char *copy = strdup(name);
    if (copy)
        s->v[s->n++] = copy;
}

const char *cli_names_get(const cli_names *n, cli_name_kind kind, size_t i)
{
    if (!n)
        return NULL;
    const name_set *s = &n->sets[kind == CLI_NAME_GROUP];
    return i < s->n ? s->v[i] : NULL;
}
