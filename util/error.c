#include "util/error.h"

const char *hub_strerror(int err)
{
    switch (err) {
    case HUB_OK: return "success";
    case HUB_ENOMEM: return "out of memory";
    case HUB_EINVAL: return "invalid input";
    case HUB_EIO: return "I/O error";
    case HUB_ECRYPTO: return "cryptographic operation failed";
    case HUB_EBADPASS: return "wrong master passphrase";
    case HUB_EBADCSR: return "invalid certificate signing request";
    case HUB_EKEYPOLICY: return "key type or size not accepted";
    case HUB_EDB: return "database error";
    case HUB_ENOTFOUND: return "not found";
    case HUB_EEXIST: return "already exists";
    case HUB_ECONFIG: return "configuration error";
    case HUB_ERANGE: return "value out of range";
    case HUB_EDBDOWN: return "database unavailable";
    default: return "unknown error";
    }
}
