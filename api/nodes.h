/* GET /v1/nodes: the nodes of a cluster as the registry knows them (db/nodes.h). */
#ifndef HUB_API_NODES_H
#define HUB_API_NODES_H

#include "api/request.h"

/* GET /v1/nodes: 200 {"nodes": [...]}, every registered node, alive or not. */
void hub_api_nodes_list(struct hub_req *r);

#endif
