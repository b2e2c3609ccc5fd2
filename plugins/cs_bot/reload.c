/* plugins/cs_bot/reload.c: picks up an edited FAQ without a restart.
 *
 * Every faq_reload_s the bot asks the blocking thread (run_blocking) to
 * look at the file: stat it, and read it again if its modification time or
 * size changed. The new FAQ is swapped in on the loop, in the completion,
 * so faq_answer never sees it half-built. A file that no longer reads (a
 * YAML mistake, an answer too long) is reported once with its line and the
 * old FAQ stays. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bot.h"

int faq_stamp_of(const char *path, faq_stamp *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    out->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    out->size = (long long)st.st_size;
    return 0;
}

/* One reread, owned by the blocking thread while it runs, then by the loop. */
typedef struct reload_job {
    char *path;
    size_t max_answer;
    faq_stamp seen;         /* in: the file as last read; out: as now */
    bool changed;
    faq *faq;               /* out: the new FAQ, or NULL (err says why) */
    char err[300];
} reload_job;

static void reload_work(void *arg)
{
    reload_job *j = arg;
    faq_stamp now;
    if (faq_stamp_of(j->path, &now) != 0) {
        /* Gone (or unreadable): a change once, not at every look. */
        static const faq_stamp missing = { -1, -1 };
        if (j->seen.mtime_ns == missing.mtime_ns && j->seen.size == missing.size)
            return;
        j->changed = true;
        j->seen = missing;
        snprintf(j->err, sizeof j->err, "cannot read %s: %s", j->path, strerror(errno));
        return;
    }
    if (now.mtime_ns == j->seen.mtime_ns && now.size == j->seen.size)
        return;
    j->changed = true;
    j->seen = now;
    j->faq = faq_load(j->path, j->max_answer, j->err, sizeof j->err);
}

static void reload_done(void *state, void *arg)
{
    bot *b = state;
    reload_job *j = arg;
    b->reloading = false;
    if (j->changed) {
        /* Either way this version of the file has been seen: a broken one
         * is reported once, not at every look. */
        b->faq_seen = j->seen;
        if (j->faq) {
            faq_free(b->faq);
            b->faq = j->faq;
            b->api->log(b->host, IMCORE_LOG_INFO, "FAQ reloaded from %s: %zu entries", j->path,
                        faq_size(b->faq));
        } else {
            b->api->log(b->host, IMCORE_LOG_WARN, "FAQ not reloaded, the one read before "
                        "stays: %s", j->err);
        }
    }
    free(j->path);
    free(j);
}

void faq_reload_check(bot *b)
{
    if (b->reloading || !b->faq_path)
        return;
    reload_job *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(b->faq_path))) {
        free(j);
        return; /* out of memory: the next tick tries again */
    }
    j->max_answer = b->max_body;
    j->seen = b->faq_seen;
    if (b->api->run_blocking(b->host, reload_work, reload_done, j) != 0) {
        free(j->path);
        free(j);
        return;
    }
    b->reloading = true;
}
