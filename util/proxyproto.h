/* The PROXY protocol (HAProxy's spec, versions 1 and 2): the header a load balancer sends
 * first on each connection it relays, naming the client it relays for. A strict, bounded
 * parser; a reader that takes the header off a socket without ever reading past it (the
 * TLS handshake that follows stays in the socket for whoever reads next); and the list of
 * addresses allowed to send one (proxy_trusted). No state of its own; any thread. */
#ifndef HUB_UTIL_PROXYPROTO_H
#define HUB_UTIL_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest header accepted, TLVs included (a version 1 line is at most 107 bytes). */
#define HUB_PROXY_MAX 512

/* What a complete header said. local: a version 2 LOCAL command (the proxy's own health
 * check) or a version 1 UNKNOWN line: no client address, the connection's own peer stands.
 * Otherwise src (src_len bytes) is the client, AF_INET or AF_INET6, TCP. */
struct hub_proxy_header {
    int version; /* 1 or 2 */
    int local;
    struct sockaddr_storage src;
    socklen_t src_len;
};

/* Parses the n bytes at p as the start of a connection. Returns the header's length (> 0)
 * with h filled when p holds a complete valid header, 0 when every byte so far is a valid
 * beginning of one (more needed; n < HUB_PROXY_MAX), or HUB_EINVAL with *why (a static
 * string, for logs) when it cannot be one: wrong signature (e.g. a TLS ClientHello),
 * version or command, a family other than TCP over IPv4/IPv6 in a PROXY command (UNIX
 * sockets, UDP), lengths that disagree, a malformed TLV list, or over HUB_PROXY_MAX. */
int hub_proxy_parse(const uint8_t *p, size_t n, struct hub_proxy_header *h, const char **why);

/* The header read so far from one socket. Zero it before the first hub_proxy_read. */
struct hub_proxy_reader {
    uint8_t buf[HUB_PROXY_MAX];
    size_t have;
};

/* Reads from the non-blocking socket fd what is there of the header, never a byte past it
 * (it peeks, then consumes only header bytes). Returns the header's length (> 0, h filled)
 * once complete, 0 when it needs more (call again when fd is readable), HUB_EINVAL (bad
 * header, *why set) or HUB_EIO (the peer closed or a socket error, *why set). */
int hub_proxy_read(int fd, struct hub_proxy_reader *r, struct hub_proxy_header *h,
                   const char **why);

/* The addresses allowed to send a header: a comma-separated list of IPv4/IPv6 addresses or
 * CIDR blocks ("10.0.0.5, 10.89.0.0/16, fd00::/8"). */
struct hub_proxy_trust;
/* Parses s into *out (freed with hub_proxy_trust_free). Returns 0, HUB_EINVAL (why says
 * which entry) or HUB_ENOMEM. An empty list trusts nobody. */
int hub_proxy_trust_parse(const char *s, struct hub_proxy_trust **out, char *why, size_t whylen);
void hub_proxy_trust_free(struct hub_proxy_trust *t);
/* 1 when the list has at least one entry. */
int hub_proxy_trusted_any(const struct hub_proxy_trust *t);
/* 1 when sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as IPv4) is in the
 * list. t NULL: 0. */
int hub_proxy_trusted(const struct hub_proxy_trust *t, const struct sockaddr *sa);

/* "ip:port" ("[ip]:port" for IPv6) of sa in out (n bytes). */
void hub_proxy_addr_str(const struct sockaddr *sa, char *out, size_t n);

#endif
