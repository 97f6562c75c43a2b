/* Error codes shared by every module: functions return 0 or a negative HUB_E* code. */
#ifndef HUB_UTIL_ERROR_H
#define HUB_UTIL_ERROR_H

enum {
    HUB_OK = 0,
    HUB_ENOMEM = -1,     /* allocation failed */
    HUB_EINVAL = -2,     /* invalid argument or malformed input */
    HUB_EIO = -3,        /* file or socket I/O failed (errno logged) */
    HUB_ECRYPTO = -4,    /* an mbedTLS call failed (code logged) */
    HUB_EBADPASS = -5,   /* master passphrase does not open a sealed key */
    HUB_EBADCSR = -6,    /* CSR does not parse or its signature does not verify */
    HUB_EKEYPOLICY = -7, /* key type or size not accepted */
    HUB_EDB = -8,        /* database error (message logged) */
    HUB_ENOTFOUND = -9,  /* requested object does not exist */
    HUB_EEXIST = -10,    /* object already exists */
    HUB_ECONFIG = -11,   /* configuration error (key and line reported) */
    HUB_ERANGE = -12,    /* value or size out of range */
    HUB_EDBDOWN = -13,   /* database unreachable */
};

/* Returns a static, human readable description of a HUB_E* code. */
const char *hub_strerror(int err);

#endif
