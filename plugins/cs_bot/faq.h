/* plugins/cs_bot/faq.h: the bot's FAQ, read once from a YAML file at init,
 * then only read: which answer fits a customer's message.
 *
 * It knows nothing of the server, of customers or of the plugin API. */
#ifndef CS_BOT_FAQ_H
#define CS_BOT_FAQ_H

#include <stddef.h>

typedef struct faq faq;

/* Reads the FAQ at path: a YAML sequence of mappings
 *
 *     - keywords: [hours, open]        # or "hours, open"
 *       answer: "We are open from 9 to 5."
 *
 * An answer may be at most max_answer bytes (0: any length), once on one
 * line. On success returns the FAQ (an empty file gives one with no
 * entries), the caller's, freed with faq_free(). On failure returns NULL
 * with a sentence in err (errlen bytes, NUL-terminated): "PATH:LINE: what",
 * or "cannot read PATH: why" when the file cannot be opened. */
faq *faq_load(const char *path, size_t max_answer, char *err, size_t errlen);

void faq_free(faq *f); /* NULL is fine */

size_t faq_size(const faq *f);

/* The answer that fits text (len bytes, any bytes) best, or NULL. The text
 * is lower-cased (ASCII) and split into words: runs of letters and digits,
 * where every byte >= 0x80 counts as a letter, so UTF-8 words stay whole.
 * An entry scores one for each of its keywords found among the words; a
 * keyword holding anything else (a space: "credit card") is looked for as a
 * substring of the lower-cased text instead. The best score of at least one
 * wins; ties go to the earlier entry. The answer is one line, borrowed
 * until faq_free(). Returns NULL also when out of memory. */
const char *faq_answer(const faq *f, const char *text, size_t len);

#endif
