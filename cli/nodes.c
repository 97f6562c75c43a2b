/* One table row per registered node, alive or not (docs/cli.md). */
#include "cli/nodes.h"

#include "cli/output.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

int hub_cmd_nodes(struct hub_ctl *ctl)
{
    static const struct hub_field cols[] = {
        {"NAME", "name"},           {"ALIVE", "alive"},          {"VERSION", "version"},
        {"CONNECTIONS", "connections"}, {"SESSIONS", "sessions"}, {"STARTED", "started_at"},
        {"HEARTBEAT", "heartbeat_at"}, {"STOPPED", "stopped_at"}};
    struct hub_response resp;
    int rc = hub_client_call(ctl->client, "GET", "/v1/nodes", NULL, HUB_CLIENT_BEARER, &resp);
    if (rc == 0 && ctl->json)
        hub_output_json(&resp.body);
    else if (rc == 0)
        hub_output_table(json_object_get(resp.json, "nodes"), cols, ARRAY_LEN(cols));
    hub_client_response_free(&resp);
    return rc;
}
