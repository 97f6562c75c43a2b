/* iothubctl nodes: the nodes of a cluster (GET /v1/nodes). */
#ifndef HUB_CLI_NODES_H
#define HUB_CLI_NODES_H

#include "cli/commands.h"

int hub_cmd_nodes(struct hub_ctl *ctl);

#endif
