/* The backbone's address and this node's name as the configuration gives them: the checks
 * server/config.c runs on `backbone` and `node_name`, and the parsed form server/backbone.c
 * connects with. Pure functions, any thread; nothing here knows struct hub_config. */
#ifndef HUB_SERVER_BACKBONE_CONF_H
#define HUB_SERVER_BACKBONE_CONF_H

#include <stddef.h>

#define HUB_NODE_NAME_MAX 64 /* bytes of a node name, without the NUL */

/* A parsed `backbone` value: mqtt://HOST[:PORT] (TCP, port 1883 by default) or
 * mqtts://HOST[:PORT] (TLS, 8883); HOST a DNS name, an IPv4 address or [IPv6]. */
struct hub_backbone_url {
    char host[256]; /* without brackets */
    int port;
    int tls;
};

/* Parses s into *out (may be NULL: only checks). Returns 0, or HUB_EINVAL with the reason in
 * why. */
int hub_backbone_url_parse(const char *s, struct hub_backbone_url *out, char *why, size_t n);
/* 1 when s is a valid node name: 1 to HUB_NODE_NAME_MAX letters, digits, '.', '-' or '_'
 * (it becomes part of an MQTT client id and a user property on the backbone). */
int hub_node_name_valid(const char *s);
/* This node's name: name when set and non-empty, else the host name (gethostname, cut to
 * HUB_NODE_NAME_MAX and with characters a node name may not hold replaced by '-'), else
 * "iothub". Writes it into out (at least HUB_NODE_NAME_MAX + 1 bytes). */
void hub_node_name(const char *name, char *out, size_t n);

#endif
