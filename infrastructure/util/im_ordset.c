/* infrastructure/util/im_ordset.c: an AVL tree keyed by borrowed strings.
 *
 * Recursive insert and remove: the depth is bounded by 1.44 log2(n), a few
 * dozen frames at most. A walk keeps the path of nodes still to visit on a
 * stack in the iterator, so nodes carry no parent pointer. */
#include "im_ordset.h"

#include <stdlib.h>
#include <string.h>

#include "imcore/errors.h"

struct im_ordset_node {
    const char *key;
    const void *value;
    im_ordset_node *left, *right;
    int height;
};

struct im_ordset {
    im_ordset_node *root;
    size_t count;
};

im_ordset *im_ordset_new(void)
{
    return calloc(1, sizeof(im_ordset));
}

static void free_nodes(im_ordset_node *n)
{
    while (n) {
        im_ordset_node *right = n->right;
        free_nodes(n->left);
        free(n);
        n = right;
    }
}

void im_ordset_free(im_ordset *s)
{
    if (!s)
        return;
    free_nodes(s->root);
    free(s);
}

static int height(const im_ordset_node *n)
{
    return n ? n->height : 0;
}

static void fix_height(im_ordset_node *n)
{
    int l = height(n->left), r = height(n->right);
    n->height = (l > r ? l : r) + 1;
}

static im_ordset_node *rotate_right(im_ordset_node *n)
{
    im_ordset_node *l = n->left;
    n->left = l->right;
    l->right = n;
    fix_height(n);
    fix_height(l);
    return l;
}

static im_ordset_node *rotate_left(im_ordset_node *n)
{
    im_ordset_node *r = n->right;
    n->right = r->left;
    r->left = n;
    fix_height(n);
    fix_height(r);
    return r;
}

/* Restores the AVL property at n, whose subtrees are balanced and differ
 * in height by at most 2. */
static im_ordset_node *balance(im_ordset_node *n)
{
    fix_height(n);
    int bf = height(n->left) - height(n->right);
    if (bf > 1) {
        if (height(n->left->left) < height(n->left->right))
            n->left = rotate_left(n->left);
        return rotate_right(n);
    }
    if (bf < -1) {
        if (height(n->right->right) < height(n->right->left))
            n->right = rotate_right(n->right);
        return rotate_left(n);
    }
    return n;
}

/* Inserts node (a leaf) under n; *rc gets IM_EEXIST when key is there. */
static im_ordset_node *insert_at(im_ordset_node *n, im_ordset_node *node, int *rc)
{
    if (!n)
        return node;
    int c = strcmp(node->key, n->key);
    if (c == 0) {
        *rc = IM_EEXIST;
        return n;
    }
    if (c < 0)
        n->left = insert_at(n->left, node, rc);
    else
        n->right = insert_at(n->right, node, rc);
    return *rc == IM_OK ? balance(n) : n;
}

int im_ordset_insert(im_ordset *s, const char *key, const void *value)
{
    im_ordset_node *node = malloc(sizeof *node);
    if (!node)
        return IM_ENOMEM;
    *node = (im_ordset_node){ .key = key, .value = value, .height = 1 };
    int rc = IM_OK;
    s->root = insert_at(s->root, node, &rc);
    if (rc != IM_OK) {
        free(node);
        return rc;
    }
    s->count++;
    return IM_OK;
}

/* Takes the smallest node out of the subtree n, into *min. */
static im_ordset_node *take_min(im_ordset_node *n, im_ordset_node **min)
{
    if (!n->left) {
        *min = n;
        return n->right;
    }
    n->left = take_min(n->left, min);
    return balance(n);
}

static im_ordset_node *remove_at(im_ordset_node *n, const char *key, im_ordset_node **gone)
{
    if (!n)
        return NULL;
    int c = strcmp(key, n->key);
    if (c < 0) {
        n->left = remove_at(n->left, key, gone);
    } else if (c > 0) {
        n->right = remove_at(n->right, key, gone);
    } else {
        *gone = n;
        if (!n->left || !n->right)
            return n->left ? n->left : n->right;
        im_ordset_node *next;
        im_ordset_node *right = take_min(n->right, &next);
        next->left = n->left;
        next->right = right;
        return balance(next);
    }
    return balance(n);
}

const void *im_ordset_remove(im_ordset *s, const char *key)
{
    im_ordset_node *gone = NULL;
    s->root = remove_at(s->root, key, &gone);
    if (!gone)
        return NULL;
    const void *value = gone->value;
    free(gone);
    s->count--;
    return value;
}

const void *im_ordset_get(const im_ordset *s, const char *key)
{
    const im_ordset_node *n = s->root;
    while (n) {
        int c = strcmp(key, n->key);
        if (c == 0)
            return n->value;
        n = c < 0 ? n->left : n->right;
    }
    return NULL;
}

size_t im_ordset_count(const im_ordset *s)
{
    return s->count;
}

/* The stack holds, top first, the nodes still to visit whose left
 * subtrees are done: the next entry is always on top. */
void im_ordset_iter_after(const im_ordset *s, const char *after, im_ordset_iter *it)
{
    it->depth = 0;
    it->steps = 0;
    const im_ordset_node *n = s->root;
    while (n) {
        it->steps++;
        if (!after || strcmp(n->key, after) > 0) {
            it->stack[it->depth++] = n;
            n = n->left;
        } else {
            n = n->right;
        }
    }
}

bool im_ordset_next(im_ordset_iter *it, const char **key, const void **value)
{
    if (it->depth == 0)
        return false;
    const im_ordset_node *n = it->stack[--it->depth];
    if (key)
        *key = n->key;
    if (value)
        *value = n->value;
    for (const im_ordset_node *m = n->right; m; m = m->left) {
        it->steps++;
        it->stack[it->depth++] = m;
    }
    return true;
}
