/* PROXY protocol headers (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt).
 * The parser is incremental only in the sense that it tells "not yet" from "never": it is
 * run again on the whole prefix each time more bytes arrive (at most HUB_PROXY_MAX). */
#include "util/proxyproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define V1_MAX 107 /* "PROXY TCP6 " + 2 * 39 + 2 * 5 + 3 spaces + CRLF, the spec's bound */

static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char V1_SIG[] = "PROXY ";

static int fail(const char **why, const char *what)
{
    *why = what;
    return HUB_EINVAL;
}

/* ---- version 1: one text line ---------------------------------------------------------- */

/* A port: 1 to 5 digits, no leading zero (but "0"), at most 65535. -1 when invalid. */
static long v1_port(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0') || strspn(s, "0123456789") != n)
        return -1;
    long v = strtol(s, NULL, 10);
    return v <= 65535 ? v : -1;
}

/* line: the header without its CRLF, NUL-terminated (it has no other NUL: checked). */
static int v1_line(char *line, struct hub_proxy_header *h, const char **why)
{
    char *f[6];
    int nf = 0;
    char *p = line + strlen(V1_SIG);
    if (strncmp(p, "UNKNOWN", 7) == 0 && (p[7] == 0 || p[7] == ' ')) {
        h->local = 1; /* the rest of an UNKNOWN line is ignored, as the spec says */
        return 0;
    }
    for (;;) { /* fields separated by exactly one space */
        if (nf == 6)
            return fail(why, "PROXY v1: too many fields");
        f[nf++] = p;
        char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        *sp = 0;
        p = sp + 1;
    }
    if (nf != 5)
        return fail(why, "PROXY v1: expected TCP4|TCP6 SRC DST SPORT DPORT");
    int v6 = strcmp(f[0], "TCP6") == 0;
    if (!v6 && strcmp(f[0], "TCP4") != 0)
        return fail(why, "PROXY v1: unknown protocol");
    struct in6_addr a6;
    long sport = v1_port(f[3]), dport = v1_port(f[4]);
    if (sport < 0 || dport < 0)
        return fail(why, "PROXY v1: bad port");
    memset(&h->src, 0, sizeof h->src);
    if (v6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
        if (inet_pton(AF_INET6, f[1], &s->sin6_addr) != 1 || inet_pton(AF_INET6, f[2], &a6) != 1)
            return fail(why, "PROXY v1: bad IPv6 address");
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)sport);
        h->src_len = sizeof *s;
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
        struct in_addr a4;
        if (inet_pton(AF_INET, f[1], &s->sin_addr) != 1 || inet_pton(AF_INET, f[2], &a4) != 1)
            return fail(why, "PROXY v1: bad IPv4 address");
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)sport);
        h->src_len = sizeof *s;
    }
    return 0;
}

static int parse_v1(const uint8_t *p, size_t n, struct hub_proxy_header *h, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 1 >= V1_MAX) /* no CR where the last one may be */
            return fail(why, "PROXY v1: line longer than 107 bytes");
        if (p[i] == '\r') {
            if (i + 1 == n)
                return 0;
            if (p[i + 1] != '\n')
                return fail(why, "PROXY v1: CR without LF");
            char line[V1_MAX];
            memcpy(line, p, i);
            line[i] = 0;
            int rc = v1_line(line, h, why);
            return rc < 0 ? rc : (int)(i + 2);
        }
        if (p[i] < 0x20 || p[i] > 0x7e)
            return fail(why, "PROXY v1: control or non-ASCII byte");
    }
    return 0;
}

/* ---- version 2: binary ----------------------------------------------------------------- */

/* Bytes of the address block for the family byte (high nibble: UNSPEC, INET, INET6, UNIX;
 * low: UNSPEC, STREAM, DGRAM; both UNSPEC or neither), or -1 for any other value. */
static long v2_addr_len(unsigned fam)
{
    static const long len[4] = {0, 12, 36, 216};
    unsigned af = fam >> 4, proto = fam & 0x0f;
    if (af > 3 || proto > 2 || (af == 0) != (proto == 0))
        return -1;
    return len[af];
}

static int parse_v2(const uint8_t *p, size_t n, struct hub_proxy_header *h, const char **why)
{
    if (n < 16)
        return 0;
    unsigned ver = p[12] >> 4, cmd = p[12] & 0x0f, fam = p[13];
    size_t len = (size_t)p[14] << 8 | p[15], addr_len;
    if (ver != 2)
        return fail(why, "PROXY v2: bad version");
    if (cmd > 1)
        return fail(why, "PROXY v2: unknown command");
    if (16 + len > HUB_PROXY_MAX)
        return fail(why, "PROXY v2: header longer than the limit (TLVs too long)");
    long alen = v2_addr_len(fam);
    if (alen < 0)
        return fail(why, "PROXY v2: unknown address family or protocol");
    addr_len = (size_t)alen;
    if (cmd == 1 && fam != 0x11 && fam != 0x21)
        return fail(why, "PROXY v2: only TCP over IPv4 or IPv6 is accepted");
    if (addr_len > len)
        return fail(why, "PROXY v2: length shorter than the addresses");
    if (n < 16 + len)
        return 0;
    /* TLVs: type (1), length (2), value; they must fill the rest exactly. */
    for (size_t off = 16 + addr_len, end = 16 + len; off < end;) {
        if (end - off < 3)
            return fail(why, "PROXY v2: truncated TLV");
        size_t tl = (size_t)p[off + 1] << 8 | p[off + 2];
        if (tl > end - off - 3)
            return fail(why, "PROXY v2: TLV longer than the header");
        off += 3 + tl;
    }
    memset(&h->src, 0, sizeof h->src);
    h->local = cmd == 0;
    if (cmd == 1 && fam == 0x11) {
        struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, p + 16, 4);
        memcpy(&s->sin_port, p + 24, 2);
        h->src_len = sizeof *s;
    } else if (cmd == 1) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, p + 16, 16);
        memcpy(&s->sin6_port, p + 48, 2);
        h->src_len = sizeof *s;
    }
    return (int)(16 + len);
}

int hub_proxy_parse(const uint8_t *p, size_t n, struct hub_proxy_header *h, const char **why)
{
    memset(h, 0, sizeof *h);
    if (n == 0)
        return 0;
    if (p[0] == V2_SIG[0]) {
        if (memcmp(p, V2_SIG, n < 12 ? n : 12) != 0)
            return fail(why, "not a PROXY header (bad v2 signature)");
        h->version = 2;
        return parse_v2(p, n, h, why);
    }
    size_t sl = strlen(V1_SIG);
    if (memcmp(p, V1_SIG, n < sl ? n : sl) != 0)
        return fail(why, "not a PROXY header");
    h->version = 1;
    return parse_v1(p, n, h, why);
}

/* ---- reading it off a socket -------------------------------------------------------------- */

int hub_proxy_read(int fd, struct hub_proxy_reader *r, struct hub_proxy_header *h, const char **why)
{
    ssize_t got;
    if (r->have >= sizeof r->buf) { /* cannot happen: a full buffer is a complete or bad header */
        *why = "PROXY header longer than the limit";
        return HUB_EINVAL;
    }
    do
        got = recv(fd, r->buf + r->have, sizeof r->buf - r->have, MSG_PEEK | MSG_DONTWAIT);
    while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (got <= 0) {
        *why = got == 0 ? "closed before a complete PROXY header" : "socket error";
        return HUB_EIO;
    }
    int rc = hub_proxy_parse(r->buf, r->have + (size_t)got, h, why);
    if (rc < 0)
        return rc;
    /* Complete: take exactly the header's bytes. Not yet: every byte seen belongs to it. */
    size_t take = rc > 0 ? (size_t)rc - r->have : (size_t)got;
    ssize_t t;
    do
        t = recv(fd, r->buf + r->have, take, MSG_DONTWAIT);
    while (t < 0 && errno == EINTR);
    if (t != (ssize_t)take) {
        *why = "socket error";
        return HUB_EIO;
    }
    r->have += take;
    return rc;
}

/* ---- trusted proxies ------------------------------------------------------------------ */

struct hub_proxy_trust {
    size_t n;
    struct {
        int family;
        uint8_t a[16];
        unsigned bits;
    } e[];
};

int hub_proxy_trust_parse(const char *s, struct hub_proxy_trust **out, char *why, size_t whylen)
{
    size_t cap = 1;
    for (const char *c = s; *c; c++)
        cap += *c == ',';
    struct hub_proxy_trust *t = calloc(1, sizeof *t + cap * sizeof t->e[0]);
    char *copy = strdup(s);
    *out = NULL;
    if (t == NULL || copy == NULL) {
        free(t);
        free(copy);
        snprintf(why, whylen, "out of memory");
        return HUB_ENOMEM;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        tok += strspn(tok, " \t");
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
            tok[--len] = 0;
        if (len == 0)
            continue;
        char *slash = strchr(tok, '/');
        long bits = -1;
        if (slash != NULL) {
            char *end;
            *slash = 0;
            bits = strtol(slash + 1, &end, 10);
            if (slash[1] < '0' || slash[1] > '9' || *end != 0)
                bits = 999;
        }
        int fam = strchr(tok, ':') != NULL ? AF_INET6 : AF_INET;
        long max = fam == AF_INET6 ? 128 : 32;
        if (inet_pton(fam, tok, t->e[t->n].a) != 1 || bits > max) {
            snprintf(why, whylen, "\"%s%s%s\" is not an IP address or CIDR block", tok,
                     slash ? "/" : "", slash ? slash + 1 : "");
            free(copy);
            free(t);
            return HUB_EINVAL;
        }
        t->e[t->n].family = fam;
        t->e[t->n].bits = (unsigned)(bits < 0 ? max : bits);
        t->n++;
    }
    free(copy);
    *out = t;
    return 0;
}

void hub_proxy_trust_free(struct hub_proxy_trust *t)
{
    free(t);
}

int hub_proxy_trusted_any(const struct hub_proxy_trust *t)
{
    return t != NULL && t->n > 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

int hub_proxy_trusted(const struct hub_proxy_trust *t, const struct sockaddr *sa)
{
    if (t == NULL)
        return 0;
    int fam = sa->sa_family;
    const uint8_t *a;
    if (fam == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (fam == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
            fam = AF_INET;
            a += 12;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].family == fam && prefix_match(t->e[i].a, a, t->e[i].bits))
            return 1;
    return 0;
}

void hub_proxy_addr_str(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, ntohs(a->sin_port));
    } else {
        snprintf(out, n, "?:0");
    }
}
