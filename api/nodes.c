/* The registry is read as it is: a node's row (heartbeat, counts) and whether its liveness
 * lock is held, the rule its peers use to find it dead (server/cluster.h). */
#include "api/nodes.h"

#include <jansson.h>

#include "api/reply.h"
#include "api/transaction.h"
#include "db/nodes.h"

void hub_api_nodes_list(struct hub_req *r)
{
    PGconn *c = hub_transaction_db(r);
    json_t *list;
    if (c == NULL)
        return;
    int rc = hub_db_nodes_list(c, &list);
    if (rc != 0) {
        hub_reply_internal(r, rc, "node listing");
        return;
    }
    hub_reply_json(r, 200, json_pack("{s:o}", "nodes", list));
}
