/* POST/GET /v1/products. A product key is public (devices of the product are provisioned
 * under it); its secret lets a factory line provision devices without an admin token. */
#include "api/products.h"

#include <stdio.h>
#include <string.h>

#include "api/audit.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/transaction.h"
#include "db/db.h"
#include "db/products.h"
#include "util/error.h"
#include "util/passhash.h"
#include "util/secure.h"

void hub_api_products_create(struct hub_req *r)
{
    json_t *body = hub_params_json(r);
    if (body == NULL)
        return;
    const char *name = hub_params_string(r, body, "name", 1, 200);
    PGconn *c = name ? hub_transaction_db(r) : NULL;
    if (c == NULL)
        goto out;
    uint8_t raw[8];
    char key[17], secret[25], hash[HUB_PASSHASH_MAX];
    int rc = hub_random(raw, sizeof raw);
    hub_hex_lower(raw, sizeof raw, key);
    if (rc == 0)
        rc = hub_secret_generate(secret);
    if (rc == 0)
        rc = hub_passhash_make(secret, hash);
    if (rc == 0)
        rc = hub_db_begin(c);
    if (rc == 0)
        rc = hub_db_products_insert(c, key, name, hash);
    if (rc == 0)
        rc = hub_api_audit_write(r, key, NULL);
    if (rc != 0) {
        hub_reply_internal(r, rc, "product creation");
        goto out;
    }
    if (hub_transaction_commit(r) != 0)
        goto out;
    hub_reply_json(r, 201,
                   json_pack("{s:s,s:s,s:s}", "product_key", key, "product_secret", secret,
                             "name", name));
    hub_wipe(secret, sizeof secret);
out:
    json_decref(body);
}

void hub_api_products_list(struct hub_req *r)
{
    PGconn *c = hub_transaction_db(r);
    json_t *list;
    if (c == NULL)
        return;
    int rc = hub_db_products_list(c, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "product listing");
        return;
    }
    hub_reply_json(r, 200, json_pack("{s:o}", "products", list));
}
