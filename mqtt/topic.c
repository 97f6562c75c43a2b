/* Topic names and filters are walked level by level with next_level(); a string of n '/'
 * has n + 1 levels, possibly empty. Matching, inclusion and overlap are the same walk over
 * two strings with different rules for '+' and '#', plus the '$' rule on the first level. */
#include "mqtt/topic.h"

#include <string.h>

#include "mqtt/utf8.h"

/* Sets [*start, *start + *len) to the level at *pos and advances *pos past its '/'.
 * Returns 0 when every level has been read (*pos > slen). */
static int next_level(const char *s, size_t slen, size_t *pos, size_t *start, size_t *len)
{
    const char *slash;
    if (*pos > slen)
        return 0;
    *start = *pos;
    slash = memchr(s + *pos, '/', slen - *pos);
    *len = (slash ? (size_t)(slash - s) : slen) - *pos;
    *pos += *len + 1;
    return 1;
}

static int is_hash(const char *s, size_t start, size_t len)
{
    return len == 1 && s[start] == '#';
}

static int is_plus(const char *s, size_t start, size_t len)
{
    return len == 1 && s[start] == '+';
}

static int is_wild(const char *s, size_t start, size_t len)
{
    return is_hash(s, start, len) || is_plus(s, start, len);
}

/* A first level that is a literal starting with '$' (hidden from leading wildcards). */
static int is_dollar(const char *s, size_t start, size_t len)
{
    return len > 0 && s[start] == '$';
}

int hub_topic_name_valid(const char *topic, size_t len)
{
    if (len == 0 || len > 65535)
        return 0;
    if (memchr(topic, '+', len) || memchr(topic, '#', len))
        return 0;
    return hub_utf8_valid((const uint8_t *)topic, len);
}

int hub_topic_filter_valid(const char *filter, size_t len)
{
    size_t pos = 0, start, llen;
    if (len == 0 || len > 65535)
        return 0;
    while (next_level(filter, len, &pos, &start, &llen)) {
        const char *plus = memchr(filter + start, '+', llen);
        const char *hash = memchr(filter + start, '#', llen);
        if ((plus || hash) && llen != 1)
            return 0;
        if (hash && pos <= len)
            return 0; /* '#' not on the last level */
    }
    return hub_utf8_valid((const uint8_t *)filter, len);
}

int hub_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen)
{
    size_t fp = 0, tp = 0, fs = 0, fl = 0, ts = 0, tl = 0;
    int first = 1;
    for (;;) {
        int hf = next_level(filter, flen, &fp, &fs, &fl);
        int ht = next_level(topic, tlen, &tp, &ts, &tl);
        if (!hf)
            return !ht;
        if (first && ht && is_wild(filter, fs, fl) && is_dollar(topic, ts, tl))
            return 0;
        first = 0;
        if (is_hash(filter, fs, fl))
            return 1; /* the rest, including no level at all (the parent) */
        if (!ht)
            return 0;
        if (is_plus(filter, fs, fl))
            continue;
        if (fl != tl || memcmp(filter + fs, topic + ts, fl) != 0)
            return 0;
    }
}

/* Subtlety shared by covers and overlap: '#' matches its parent level only when that parent
 * is a valid topic, and the empty string is not one. So "#" and "/#" match one level or
 * more past their prefix: "+/#" covers "#", and "+" does not overlap "/#". */

int hub_topic_covers(const char *outer, size_t olen, const char *inner, size_t ilen)
{
    size_t op = 0, ip = 0, os = 0, ol = 0, is = 0, il = 0, k = 0;
    int inner_empty_first = 0;
    for (;;) {
        int ho = next_level(outer, olen, &op, &os, &ol);
        int hi = next_level(inner, ilen, &ip, &is, &il);
        if (!ho)
            return !hi;
        k++;
        if (k == 1 && hi && is_wild(outer, os, ol) && is_dollar(inner, is, il))
            return 0; /* inner matches only '$' topics, which outer's wildcard skips */
        if (is_hash(outer, os, ol))
            return 1;
        if (!hi)
            return 0;
        if (is_hash(inner, is, il)) {
            /* Outer "+/#" covers an inner '#' whose parent is the empty topic. */
            if ((k == 1 || (k == 2 && inner_empty_first)) && is_plus(outer, os, ol))
                return next_level(outer, olen, &op, &os, &ol) && is_hash(outer, os, ol);
            return 0;
        }
        if (k == 1)
            inner_empty_first = il == 0;
        if (is_plus(outer, os, ol))
            continue; /* inner has a literal or '+': one level either way */
        if (is_plus(inner, is, il))
            return 0;
        if (ol != il || memcmp(outer + os, inner + is, ol) != 0)
            return 0;
    }
}

int hub_topic_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t ap = 0, bp = 0, as = 0, al = 0, bs = 0, bl = 0, k = 0;
    int empty_first = 0; /* the common first level can only be "" */
    for (;;) {
        int ha = next_level(a, alen, &ap, &as, &al);
        int hb = next_level(b, blen, &bp, &bs, &bl);
        int hash_a = ha && is_hash(a, as, al), hash_b = hb && is_hash(b, bs, bl);
        if (!ha && !hb)
            return 1;
        k++;
        if (k == 1 && ha && hb &&
            ((is_wild(a, as, al) && is_dollar(b, bs, bl)) ||
             (is_wild(b, bs, bl) && is_dollar(a, as, al))))
            return 0;
        if ((hash_a && !hb) || (hash_b && !ha))
            return !(k == 2 && empty_first); /* the common topic is the parent */
        if (hash_a || hash_b)
            return 1;
        if (!ha || !hb)
            return 0;
        if (k == 1)
            empty_first = al == 0 || bl == 0; /* a literal "" (wildcards have length 1) */
        if (is_plus(a, as, al) || is_plus(b, bs, bl))
            continue;
        if (al != bl || memcmp(a + as, b + bs, al) != 0)
            return 0;
    }
}
