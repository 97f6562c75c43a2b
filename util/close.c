#include "util/close.h"

static const char *const NAMES[HUB_CLOSE_COUNT] = {
    [HUB_CLOSE_NONE] = "",
    [HUB_CLOSE_NORMAL] = "normal",
    [HUB_CLOSE_PEER] = "peer_closed",
    [HUB_CLOSE_REVOKED] = "revoked",
    [HUB_CLOSE_TIMEOUT] = "timeout",
    [HUB_CLOSE_PROTOCOL] = "protocol_error",
    [HUB_CLOSE_TAKEOVER] = "takeover",
    [HUB_CLOSE_REFUSED] = "refused",
    [HUB_CLOSE_LIMIT] = "limit",
    [HUB_CLOSE_SHUTDOWN] = "server_shutdown",
    [HUB_CLOSE_ERROR] = "error",
    [HUB_CLOSE_LOCAL] = "local",
};

const char *hub_close_reason_name(enum hub_close_reason reason)
{
    return (unsigned)reason < HUB_CLOSE_COUNT ? NAMES[reason] : "";
}
