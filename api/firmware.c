#include "api/firmware.h"

#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "db/db.h"
#include "db/firmware.h"
#include "util/error.h"

void hub_api_firmware_list(struct hub_req *r)
{
    json_t *list;
    const char *product = hub_request_query(r, "product_key");
    if (product != NULL && (product[0] == 0 || strlen(product) > 64)) {
        hub_reply_error(r, 400, "invalid_parameter", "product_key must be 1 to 64 characters");
        return;
    }
    PGconn *c = hub_transaction_db(r);
    if (c == NULL)
        return;
    int rc = hub_db_firmware_list(c, product, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware listing");
        return;
    }
    hub_reply_json(r, 200, json_pack("{s:o}", "firmware", list));
}

/* The image id of the path, or a 404 reply. */
static int firmware_id(struct hub_req *r)
{
    if (hub_params_uuid_valid(r->params[0]))
        return 0;
    hub_reply_error(r, 404, "not_found", "no firmware image %s", r->params[0]);
    return HUB_REPLIED;
}

void hub_api_firmware_show(struct hub_req *r)
{
    json_t *m;
    PGconn *c = firmware_id(r) == 0 ? hub_transaction_db(r) : NULL;
    if (c == NULL)
        return;
    int rc = hub_db_firmware_get(c, r->params[0], &m);
    if (rc == HUB_ENOTFOUND)
        hub_reply_error(r, 404, "not_found", "no firmware image %s", r->params[0]);
    else if (rc != 0)
        hub_reply_internal(r, rc, "firmware lookup");
    else
        hub_reply_json(r, 200, m);
}

void hub_api_firmware_delete(struct hub_req *r)
{
    PGconn *c = firmware_id(r) == 0 ? hub_transaction_db(r) : NULL;
    if (c == NULL)
        return;
    int rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_firmware_delete(c, r->params[0]);
    if (rc == HUB_ENOTFOUND) {
        hub_reply_error(r, 404, "not_found", "no firmware image %s", r->params[0]);
        return;
    }
    if (rc == HUB_EEXIST) {
        hub_reply_error(r, 409, "firmware_in_use",
                        "firmware %s is referenced by a rollout; delete or finish the rollout "
                        "first",
                        r->params[0]);
        return;
    }
    if (rc == 0)
        rc = hub_api_audit_write(r, r->params[0], NULL);
    if (rc != 0) {
        hub_reply_internal(r, rc, "firmware deletion");
        return;
    }
    if (hub_transaction_commit(r) != 0)
        return;
    hub_reply_raw(r, 204, "application/json", "", 0);
}
