/* Setting a request's response: JSON bodies, SPEC §4's error shape
 * {"error": {"code", "message"}}, raw bytes, headers, and the cursor of a paginated list.
 * A handler sets exactly one response; setting another replaces it. */
#ifndef HUB_API_REPLY_H
#define HUB_API_REPLY_H

#include <stddef.h>

#include <jansson.h>

#include "api/request.h"

/* What a helper returns when it has already set the (error) reply: the caller returns
 * without replying again. Distinct from 0 and from every HUB_E* code (all negative). */
enum { HUB_REPLIED = 1 };

/* Replies with a JSON body (takes ownership of body). */
void hub_reply_json(struct hub_req *r, unsigned status, json_t *body);
/* Replies {"error": {"code": code, "message": printf(fmt)}}; malformed UTF-8 quoted from
 * the request becomes '?'. */
void hub_reply_error(struct hub_req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies with bytes of a content type (copied). */
void hub_reply_raw(struct hub_req *r, unsigned status, const char *content_type, const void *data,
                   size_t len);
/* Adds a header to the response already set. */
void hub_reply_header(struct hub_req *r, const char *name, const char *value);
/* Maps a HUB_E* from a database or CA call to a reply: 503 when the database is down, 500
 * otherwise (logged). */
void hub_reply_internal(struct hub_req *r, int err, const char *what);
/* The cursor of the next page: field of the last element when the page is full (a new
 * reference), else NULL. */
json_t *hub_reply_next_cursor(json_t *list, int limit, const char *field);

#endif
