/* /v1/tokens: API tokens (create, list, revoke; never the last admin token). The token
 * format and its hash are in api/token.c. */
#include "api/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/token.h"
#include "api/transaction.h"
#include "db/db.h"
#include "db/tokens.h"
#include "util/error.h"
#include "util/secure.h"

void hub_api_tokens_create(struct hub_req *r)
{
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    const char *name = hub_params_string(r, body, "name", 1, 100);
    const char *role = name ? hub_params_string(r, body, "role", 1, 16) : NULL;
    if (role == NULL)
        goto out;
    if (!hub_token_role_valid(role)) {
        hub_reply_error(r, 400, "invalid_field",
                        "role must be admin, operator, provisioner or auditor");
        goto out;
    }
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        goto out;
    char token[HUB_TOKEN_LEN + 1];
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_token_create(c, name, role, token, sizeof token);
    if (rc == HUB_EEXIST) {
        hub_db_rollback(c);
        hub_reply_error(r, 409, "conflict", "a token named \"%s\" already exists", name);
        goto out;
    }
    json_t *details = json_pack("{s:s}", "role", role);
    char *details_text = json_dumps(details, JSON_COMPACT);
    json_decref(details);
    if (rc == 0)
        rc = hub_api_audit_write(r, name, details_text);
    free(details_text);
    if (rc != 0) {
        hub_reply_internal(r, rc, "token creation");
        goto out;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 201,
                       json_pack("{s:s,s:s#,s:s,s:s}", "token", token, "token_id", token + 7,
                                 (int)HUB_TOKEN_ID_LEN, "name", name, "role", role));
    hub_wipe(token, sizeof token);
out:
    json_decref(body);
}

void hub_api_tokens_list(struct hub_req *r)
{
    PGconn *c = hub_transaction_db(r);
    json_t *list;
    if (c == NULL)
        return;
    int rc = hub_db_tokens_list(c, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "token listing");
        return;
    }
    hub_reply_json(r, 200, json_pack("{s:o}", "tokens", list));
}

/* 1 when s looks like a token id: HUB_TOKEN_ID_LEN lower-case hex digits. */
static int token_id_valid(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == HUB_TOKEN_ID_LEN && s[n] == 0;
}

void hub_api_tokens_revoke(struct hub_req *r)
{
    const char *id = r->params[0];
    if (!token_id_valid(id)) {
        hub_reply_error(r, 404, "not_found", "no token with id %.40s", id);
        return;
    }
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return;
    char name[101], role[16];
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_tokens_revoke(c, id, name, role);
    if (rc == HUB_ENOTFOUND || rc == HUB_EEXIST || rc == HUB_ERANGE) {
        hub_db_rollback(c);
        if (rc == HUB_ENOTFOUND)
            hub_reply_error(r, 404, "not_found", "no token with id %s", id);
        else if (rc == HUB_EEXIST)
            hub_reply_error(r, 409, "already_revoked", "token %s was already revoked", id);
        else
            hub_reply_error(r, 409, "last_admin_token",
                            "token %s is the last active admin token; create another first", id);
        return;
    }
    json_t *details = json_pack("{s:s,s:s}", "name", name, "role", role);
    char *details_text = details ? json_dumps(details, JSON_COMPACT) : NULL;
    json_decref(details);
    if (rc == 0)
        rc = details_text ? hub_api_audit_write(r, id, details_text) : HUB_ENOMEM;
    free(details_text);
    if (rc != 0) {
        hub_reply_internal(r, rc, "token revocation");
        return;
    }
    if (hub_transaction_commit(r) == 0)
        hub_reply_json(r, 200,
                       json_pack("{s:s,s:s,s:s,s:b}", "token_id", id, "name", name, "role", role,
                                 "revoked", 1));
}
