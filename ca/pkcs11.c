/* PKCS#11 through dlopen: the module's C_GetFunctionList gives the whole API, so nothing
 * links against a PKCS#11 library and the module is a configuration choice. The module is
 * initialised once (CKF_OS_LOCKING_OK: the module locks itself); each key owns a session
 * that one mutex serialises. A token that forgets the session or the login (restarted
 * daemon, removed and reinserted token) gets a new session, login and object lookup, and
 * the signature is tried once more. The PIN stays in memory only for that re-login. */
#include "ca/pkcs11.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mbedtls/ecp.h>
#include <mbedtls/rsa.h>
#include <p11-kit/pkcs11.h>

#include "util/error.h"
#include "util/log.h"
#include "util/secure.h"

#define ATTR_MAX 1024 /* an RSA-4096 modulus is 512 bytes, an EC point at most 133 */

struct hub_p11_key {
    pthread_mutex_t lock;
    struct hub_p11_uri u;      /* pin_value wiped: the PIN is in pin */
    char uri[HUB_P11_URI_MAX]; /* redacted: for messages */
    char pin[128];
    size_t pin_len;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE session; /* CK_INVALID_HANDLE when closed */
    CK_OBJECT_HANDLE obj;
    CK_KEY_TYPE type; /* CKK_EC or CKK_RSA */
    size_t ec_len;    /* EC: bytes of r (and of s) */
};

static pthread_mutex_t mod_lock = PTHREAD_MUTEX_INITIALIZER;
static void *mod_handle;
static CK_FUNCTION_LIST *p11;
static char mod_path[512];
static struct hub_p11_uri defaults; /* module_path, pin_source, pin_value */

static _Atomic uint64_t st_ok, st_failed, st_reopened;
static struct hub_histogram_atomic st_latency;
const struct hub_histogram_bounds hub_p11_latency_bounds = {
    9, {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5}};

static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

/* The common names of the return values a user can act on; the number for the rest. */
static const char *rv_name(CK_RV rv)
{
    switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    default: return NULL;
    }
}

static void log_rv(const char *uri, const char *call, CK_RV rv)
{
    const char *name = rv_name(rv);
    if (name != NULL)
        hub_error("CA key %s: %s failed: %s", uri, call, name);
    else
        hub_error("CA key %s: %s failed: CKR 0x%lx", uri, call, (unsigned long)rv);
}

int hub_p11_configure(const char *store_uri, const char *module, const char *pin_file)
{
    char err[256];
    struct hub_p11_uri u;
    memset(&u, 0, sizeof u);
    if (store_uri != NULL && strncmp(store_uri, "pkcs11:", 7) == 0 &&
        hub_p11_uri_parse(store_uri, &u, err, sizeof err) != 0) {
        hub_error("ca_key_store: %s", err);
        return HUB_EINVAL;
    }
    pthread_mutex_lock(&mod_lock);
    hub_wipe(&defaults, sizeof defaults);
    snprintf(defaults.module_path, sizeof defaults.module_path, "%s",
             u.module_path[0] ? u.module_path
             : module         ? module
                              : "");
    if (u.pin_value[0])
        memcpy(defaults.pin_value, u.pin_value, sizeof u.pin_value);
    else
        snprintf(defaults.pin_source, sizeof defaults.pin_source, "%s",
                 u.pin_source[0] ? u.pin_source
                 : pin_file      ? pin_file
                                 : "");
    pthread_mutex_unlock(&mod_lock);
    hub_wipe(&u, sizeof u);
    return 0;
}

/* Loads and initialises the module at path once per process. */
static int load_module(const char *path, const char *uri)
{
    int rc = 0;
    pthread_mutex_lock(&mod_lock);
    if (p11 != NULL) {
        if (strcmp(path, mod_path) != 0) {
            hub_error("CA key %s: module %s requested, but this process already uses %s", uri, path,
                      mod_path);
            rc = HUB_ECONFIG;
        }
        goto out;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        hub_error("CA key %s: cannot load the PKCS#11 module: %s", uri, dlerror());
        rc = HUB_ECONFIG;
        goto out;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;
    CK_RV rv = get != NULL ? get(&fl) : CKR_FUNCTION_NOT_SUPPORTED;
    if (rv != CKR_OK || fl == NULL) {
        hub_error("CA key %s: %s is not a PKCS#11 module (no C_GetFunctionList)", uri, path);
        dlclose(h);
        rc = HUB_ECONFIG;
        goto out;
    }
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    rv = fl->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        log_rv(uri, "C_Initialize", rv);
        dlclose(h);
        rc = HUB_ECONFIG;
        goto out;
    }
    mod_handle = h;
    p11 = fl;
    snprintf(mod_path, sizeof mod_path, "%s", path);
out:
    pthread_mutex_unlock(&mod_lock);
    return rc;
}

/* Copies a blank-padded CK_TOKEN_INFO field without its padding. */
static void unpad(const unsigned char *f, size_t n, char *out)
{
    while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == 0))
        n--;
    memcpy(out, f, n);
    out[n] = 0;
}

/* Finds the slot whose token matches the URI. */
static int find_slot(struct hub_p11_key *k)
{
    CK_ULONG n = 0;
    CK_RV rv = p11->C_GetSlotList(CK_TRUE, NULL, &n);
    CK_SLOT_ID *slots = n > 0 ? calloc(n, sizeof *slots) : NULL;
    if (rv == CKR_OK && n > 0 && slots == NULL)
        return HUB_ENOMEM;
    if (rv == CKR_OK && n > 0)
        rv = p11->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK) {
        free(slots);
        log_rv(k->uri, "C_GetSlotList", rv);
        return HUB_ECONFIG;
    }
    int found = 0;
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_TOKEN_INFO ti;
        char label[33], manuf[33], model[17], serial[17];
        if (p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        unpad(ti.label, sizeof ti.label, label);
        unpad(ti.manufacturerID, sizeof ti.manufacturerID, manuf);
        unpad(ti.model, sizeof ti.model, model);
        unpad(ti.serialNumber, sizeof ti.serialNumber, serial);
        if ((k->u.token[0] && strcmp(k->u.token, label) != 0) ||
            (k->u.manufacturer[0] && strcmp(k->u.manufacturer, manuf) != 0) ||
            (k->u.model[0] && strcmp(k->u.model, model) != 0) ||
            (k->u.serial[0] && strcmp(k->u.serial, serial) != 0))
            continue;
        k->slot = slots[i];
        found = 1;
    }
    free(slots);
    if (!found) {
        hub_error("CA key %s: token \"%s\" is not present (%lu token(s) in module %s)", k->uri,
                  k->u.token[0] ? k->u.token : k->u.serial, (unsigned long)n, mod_path);
        return HUB_ECONFIG;
    }
    return 0;
}

/* Reads the PIN: the URI's pin-value or pin-source, else the configured ones. */
static int read_pin(struct hub_p11_key *k, const struct hub_p11_uri *d)
{
    const char *value = k->u.pin_value[0] ? k->u.pin_value : d->pin_value;
    const char *source = k->u.pin_source[0] ? k->u.pin_source : d->pin_source;
    if (value[0] != 0 && !k->u.pin_source[0]) {
        k->pin_len = strlen(value);
        memcpy(k->pin, value, k->pin_len);
        return 0;
    }
    if (source[0] == 0)
        return 0; /* no PIN: only for a token that needs no login */
    const char *path = strncmp(source, "file:", 5) == 0 ? source + 5 : source;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        hub_error("CA key %s: cannot read the PIN file %s: %s", k->uri, path, strerror(errno));
        return HUB_ECONFIG;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        hub_warn("PIN file %s is readable by group or others (mode %04o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
    size_t n = fread(k->pin, 1, sizeof k->pin - 1, f);
    fclose(f);
    while (n > 0 && (k->pin[n - 1] == '\n' || k->pin[n - 1] == '\r'))
        n--;
    k->pin[n] = 0;
    k->pin_len = n;
    if (n == 0 || memchr(k->pin, '\n', n) != NULL) {
        hub_error("CA key %s: the PIN file %s must hold one line", k->uri, path);
        return HUB_ECONFIG;
    }
    return 0;
}

/* Finds the objects of class the URI names; *count gets how many (up to 2). */
static CK_RV find_objects(struct hub_p11_key *k, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *h,
                          CK_ULONG *count)
{
    CK_ATTRIBUTE t[3] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_ULONG n = 1;
    if (k->u.object[0])
        t[n++] = (CK_ATTRIBUTE){CKA_LABEL, k->u.object, strlen(k->u.object)};
    if (k->u.id_len)
        t[n++] = (CK_ATTRIBUTE){CKA_ID, k->u.id, k->u.id_len};
    CK_OBJECT_HANDLE found[2];
    *count = 0;
    CK_RV rv = p11->C_FindObjectsInit(k->session, t, n);
    if (rv != CKR_OK)
        return rv;
    rv = p11->C_FindObjects(k->session, found, 2, count);
    p11->C_FindObjectsFinal(k->session);
    if (*count > 0)
        *h = found[0];
    return rv;
}

/* Opens a session on the slot, logs in and finds the private key. */
static int open_session(struct hub_p11_key *k)
{
    CK_RV rv =
        p11->C_OpenSession(k->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &k->session);
    if (rv != CKR_OK) {
        k->session = CK_INVALID_HANDLE;
        log_rv(k->uri, "C_OpenSession", rv);
        return HUB_ECONFIG;
    }
    if (k->pin_len > 0) {
        rv = p11->C_Login(k->session, CKU_USER, (CK_UTF8CHAR *)k->pin, k->pin_len);
        if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_LOCKED) {
            hub_error("CA key %s: the token refused the PIN (%s): check pkcs11_pin_file", k->uri,
                      rv_name(rv));
            return HUB_ECONFIG;
        }
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
            log_rv(k->uri, "C_Login", rv);
            return HUB_ECONFIG;
        }
    }
    CK_ULONG count;
    rv = find_objects(k, CKO_PRIVATE_KEY, &k->obj, &count);
    if (rv != CKR_OK) {
        log_rv(k->uri, "C_FindObjects", rv);
        return HUB_ECRYPTO;
    }
    if (count == 0) {
        if (k->pin_len == 0)
            hub_error("CA key %s: no private key object in the token (and no PIN given: set "
                      "pkcs11_pin_file)",
                      k->uri);
        return HUB_ENOTFOUND;
    }
    if (count > 1) {
        hub_error("CA key %s: several private keys match: add id= to the URI", k->uri);
        return HUB_EINVAL;
    }
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &k->type, sizeof k->type};
    rv = p11->C_GetAttributeValue(k->session, k->obj, &a, 1);
    if (rv != CKR_OK || (k->type != CKK_EC && k->type != CKK_RSA)) {
        hub_error("CA key %s: not an EC or RSA key", k->uri);
        return HUB_EKEYPOLICY;
    }
    return 0;
}

static void close_session(struct hub_p11_key *k)
{
    if (k->session != CK_INVALID_HANDLE)
        p11->C_CloseSession(k->session);
    k->session = CK_INVALID_HANDLE;
}

/* Reads the public key object of the URI into pub. */
static int read_public(struct hub_p11_key *k, mbedtls_pk_context *pub)
{
    CK_OBJECT_HANDLE h;
    CK_ULONG count;
    uint8_t v1[ATTR_MAX], v2[ATTR_MAX];
    CK_RV rv = find_objects(k, CKO_PUBLIC_KEY, &h, &count);
    if (rv != CKR_OK || count != 1) {
        hub_error("CA key %s: no public key object with the same label and id in the token",
                  k->uri);
        return HUB_ENOTFOUND;
    }
    int ec = k->type == CKK_EC;
    CK_ATTRIBUTE a[2] = {{ec ? CKA_EC_PARAMS : CKA_MODULUS, v1, sizeof v1},
                         {ec ? CKA_EC_POINT : CKA_PUBLIC_EXPONENT, v2, sizeof v2}};
    if ((rv = p11->C_GetAttributeValue(k->session, h, a, 2)) != CKR_OK) {
        log_rv(k->uri, "C_GetAttributeValue (public key)", rv);
        return HUB_ECRYPTO;
    }
    int ret;
    if (ec) {
        mbedtls_ecp_group_id gid = MBEDTLS_ECP_DP_NONE;
        if (a[0].ulValueLen == sizeof oid_p256 && memcmp(v1, oid_p256, sizeof oid_p256) == 0)
            gid = MBEDTLS_ECP_DP_SECP256R1;
        else if (a[0].ulValueLen == sizeof oid_p384 && memcmp(v1, oid_p384, sizeof oid_p384) == 0)
            gid = MBEDTLS_ECP_DP_SECP384R1;
        else {
            hub_error("CA key %s: the curve is neither P-256 nor P-384", k->uri);
            return HUB_EKEYPOLICY;
        }
        k->ec_len = gid == MBEDTLS_ECP_DP_SECP256R1 ? 32 : 48;
        const uint8_t *pt = v2;
        size_t len = a[1].ulValueLen;
        /* CKA_EC_POINT is a DER OCTET STRING; some modules give the bare point. */
        if (len == 2 * k->ec_len + 3 && pt[0] == 0x04 && pt[1] == len - 2) {
            pt += 2;
            len -= 2;
        }
        ret = mbedtls_pk_setup(pub, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
        if (ret == 0)
            ret = mbedtls_ecp_group_load(&mbedtls_pk_ec(*pub)->grp, gid);
        if (ret == 0)
            ret = mbedtls_ecp_point_read_binary(&mbedtls_pk_ec(*pub)->grp, &mbedtls_pk_ec(*pub)->Q,
                                                pt, len);
    } else {
        ret = mbedtls_pk_setup(pub, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
        if (ret == 0)
            ret = mbedtls_rsa_import_raw(mbedtls_pk_rsa(*pub), v1, a[0].ulValueLen, NULL, 0, NULL,
                                         0, NULL, 0, v2, a[1].ulValueLen);
        if (ret == 0)
            ret = mbedtls_rsa_complete(mbedtls_pk_rsa(*pub));
    }
    if (ret != 0) {
        hub_error("CA key %s: the token's public key does not parse (-0x%04x)", k->uri, -ret);
        return HUB_ECRYPTO;
    }
    return 0;
}

/* Appends an INTEGER from n big-endian bytes (minimal, positive) at out; returns its length. */
static size_t der_uint(uint8_t *out, const uint8_t *be, size_t n)
{
    while (n > 1 && be[0] == 0) {
        be++;
        n--;
    }
    size_t pad = be[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (uint8_t)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, be, n);
    return 2 + pad + n;
}

/* r||s (2*n bytes) to ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }. */
static int ecdsa_der(const uint8_t *raw, size_t n, uint8_t *sig, size_t size, size_t *len)
{
    uint8_t body[2 * (3 + 66)];
    size_t b = der_uint(body, raw, n);
    b += der_uint(body + b, raw + n, n);
    size_t hdr = b < 128 ? 2 : 3;
    if (hdr + b > size)
        return HUB_ERANGE;
    sig[0] = 0x30;
    if (hdr == 2) {
        sig[1] = (uint8_t)b;
    } else {
        sig[1] = 0x81;
        sig[2] = (uint8_t)b;
    }
    memcpy(sig + hdr, body, b);
    *len = hdr + b;
    return 0;
}

/* DigestInfo prefixes (RFC 8017 §9.2 note 1) for CKM_RSA_PKCS. */
static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha384[] = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30};
static const uint8_t di_sha512[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};

/* One C_SignInit + C_Sign on the current session. */
static CK_RV sign_once(struct hub_p11_key *k, const uint8_t *data, size_t len, uint8_t *out,
                       CK_ULONG *out_len)
{
    CK_MECHANISM mech = {k->type == CKK_EC ? CKM_ECDSA : CKM_RSA_PKCS, NULL, 0};
    if (k->session == CK_INVALID_HANDLE)
        return CKR_SESSION_HANDLE_INVALID;
    CK_RV rv = p11->C_SignInit(k->session, &mech, k->obj);
    if (rv == CKR_OK)
        rv = p11->C_Sign(k->session, (CK_BYTE *)data, len, out, out_len);
    return rv;
}

/* The token lost our session, login or object: worth a new session and one more try. */
static int recoverable(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_DEVICE_REMOVED ||
           rv == CKR_TOKEN_NOT_PRESENT;
}

int hub_p11_sign(struct hub_p11_key *k, mbedtls_md_type_t md, const uint8_t *hash, size_t hash_len,
                 uint8_t *sig, size_t sig_size, size_t *sig_len)
{
    uint8_t data[64 + sizeof di_sha512], raw[ATTR_MAX];
    size_t len = 0;
    if (k->type == CKK_RSA) {
        const uint8_t *di = md == MBEDTLS_MD_SHA256   ? di_sha256
                            : md == MBEDTLS_MD_SHA384 ? di_sha384
                            : md == MBEDTLS_MD_SHA512 ? di_sha512
                                                      : NULL;
        if (di == NULL || hash_len != (size_t)di[sizeof di_sha256 - 1] || hash_len > 64)
            return HUB_EINVAL;
        memcpy(data, di, sizeof di_sha256);
        len = sizeof di_sha256;
    } else if (hash_len > 64) {
        return HUB_EINVAL;
    }
    memcpy(data + len, hash, hash_len);
    len += hash_len;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&k->lock);
    CK_ULONG out_len = sizeof raw;
    CK_RV rv = sign_once(k, data, len, raw, &out_len);
    if (recoverable(rv)) {
        hub_warn("CA key %s: C_Sign: %s: opening a new session", k->uri,
                 rv_name(rv) ? rv_name(rv) : "error");
        atomic_fetch_add(&st_reopened, 1);
        close_session(k);
        if (find_slot(k) == 0 && open_session(k) == 0) {
            out_len = sizeof raw;
            rv = sign_once(k, data, len, raw, &out_len);
        }
    }
    pthread_mutex_unlock(&k->lock);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    hub_histogram_atomic_observe(
        &st_latency, &hub_p11_latency_bounds,
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000));
    int rc = 0;
    if (rv != CKR_OK) {
        log_rv(k->uri, "C_Sign", rv);
        rc = HUB_ECRYPTO;
    } else if (k->type == CKK_EC) {
        rc = out_len == 2 * k->ec_len ? ecdsa_der(raw, k->ec_len, sig, sig_size, sig_len)
                                      : HUB_ECRYPTO;
    } else if (out_len > sig_size) {
        rc = HUB_ERANGE;
    } else {
        memcpy(sig, raw, out_len);
        *sig_len = out_len;
    }
    atomic_fetch_add(rc == 0 ? &st_ok : &st_failed, 1);
    return rc;
}

/* Checks that the token key signs for pub: a test signature of a random hash. */
static int check_match(struct hub_p11_key *k, mbedtls_pk_context *pub)
{
    uint8_t hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t len = 0;
    int rc = hub_random(hash, sizeof hash);
    if (rc == 0)
        rc = hub_p11_sign(k, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig, &len);
    if (rc == 0 && mbedtls_pk_verify(pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, len) != 0) {
        hub_error("CA key %s: the token key does not match the CA certificate", k->uri);
        rc = HUB_ECRYPTO;
    }
    return rc;
}

/* Parses the URI, loads the module, finds the token and reads the PIN into a new key. */
static int key_new(const char *uri, struct hub_p11_key **out)
{
    char err[256];
    struct hub_p11_uri d;
    struct hub_p11_key *k = calloc(1, sizeof *k);
    *out = NULL;
    if (k == NULL)
        return HUB_ENOMEM;
    pthread_mutex_init(&k->lock, NULL);
    k->session = CK_INVALID_HANDLE;
    if (hub_p11_uri_redact(uri, k->uri, sizeof k->uri) != 0 ||
        hub_p11_uri_parse(uri, &k->u, err, sizeof err) != 0) {
        hub_error("CA key %s: %s", k->uri[0] ? k->uri : "(URI too long)", err);
        hub_p11_key_free(k);
        return HUB_ECONFIG;
    }
    pthread_mutex_lock(&mod_lock);
    d = defaults;
    pthread_mutex_unlock(&mod_lock);
    const char *module = k->u.module_path[0] ? k->u.module_path : d.module_path;
    int rc = 0;
    if (module[0] == 0) {
        hub_error("CA key %s: no PKCS#11 module: set pkcs11_module or module-path in the URI",
                  k->uri);
        rc = HUB_ECONFIG;
    }
    if (rc == 0)
        rc = load_module(module, k->uri);
    if (rc == 0)
        rc = read_pin(k, &d);
    hub_wipe(&d, sizeof d);
    hub_wipe(k->u.pin_value, sizeof k->u.pin_value);
    if (rc == 0)
        rc = find_slot(k);
    if (rc != 0) {
        hub_p11_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int hub_p11_key_open(const char *uri, mbedtls_pk_context *pub, struct hub_p11_key **out)
{
    struct hub_p11_key *k;
    int rc = key_new(uri, &k);
    if (rc != 0)
        return rc;
    rc = open_session(k);
    if (rc == 0 && mbedtls_pk_get_type(pub) == MBEDTLS_PK_NONE)
        rc = read_public(k, pub);
    else if (rc == 0)
        k->ec_len = k->type == CKK_EC ? (mbedtls_pk_get_bitlen(pub) + 7) / 8 : 0;
    if (rc == 0)
        rc = check_match(k, pub);
    if (rc != 0) {
        hub_p11_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int hub_p11_key_generate(const char *uri, enum hub_key_type t, mbedtls_pk_context *pub,
                         struct hub_p11_key **out)
{
    struct hub_p11_key *k;
    int rc = key_new(uri, &k);
    if (rc != 0)
        return rc;
    rc = open_session(k);
    if (rc == 0)
        rc = HUB_EEXIST;
    if (rc != HUB_ENOTFOUND)
        goto out;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = t == HUB_KEY_RSA_2048 ? 2048 : t == HUB_KEY_RSA_3072 ? 3072 : 4096;
    CK_BYTE e[] = {0x01, 0x00, 0x01};
    int ec = t == HUB_KEY_EC_P256 || t == HUB_KEY_EC_P384;
    const uint8_t *oid = t == HUB_KEY_EC_P256 ? oid_p256 : oid_p384;
    size_t oid_len = t == HUB_KEY_EC_P256 ? sizeof oid_p256 : sizeof oid_p384;
    CK_ATTRIBUTE pubt[6] = {{CKA_TOKEN, &yes, sizeof yes}, {CKA_VERIFY, &yes, sizeof yes}};
    CK_ATTRIBUTE privt[8] = {
        {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
    };
    CK_ULONG np = 2, nv = 5;
    if (ec) {
        pubt[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)oid, oid_len};
    } else {
        pubt[np++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof bits};
        pubt[np++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, e, sizeof e};
    }
    if (k->u.object[0]) {
        pubt[np++] = privt[nv++] = (CK_ATTRIBUTE){CKA_LABEL, k->u.object, strlen(k->u.object)};
    }
    if (k->u.id_len) {
        pubt[np++] = privt[nv++] = (CK_ATTRIBUTE){CKA_ID, k->u.id, k->u.id_len};
    }
    CK_MECHANISM mech = {ec ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE hpub, hpriv;
    CK_RV rv = p11->C_GenerateKeyPair(k->session, &mech, pubt, np, privt, nv, &hpub, &hpriv);
    if (rv != CKR_OK) {
        log_rv(k->uri, "C_GenerateKeyPair", rv);
        rc = HUB_ECRYPTO;
        goto out;
    }
    hub_info("CA key %s: generated a %s key pair in token \"%s\"", k->uri, hub_key_type_name(t),
             k->u.token);
    close_session(k);
    rc = open_session(k);
    if (rc == 0)
        rc = read_public(k, pub);
    if (rc == 0)
        rc = check_match(k, pub);
out:
    if (rc != 0) {
        hub_p11_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

const char *hub_p11_key_uri(const struct hub_p11_key *k)
{
    return k->uri;
}

void hub_p11_key_free(struct hub_p11_key *k)
{
    if (k == NULL)
        return;
    if (p11 != NULL)
        close_session(k);
    pthread_mutex_destroy(&k->lock);
    hub_wipe(k, sizeof *k);
    free(k);
}

void hub_p11_stats(struct hub_p11_stats *out)
{
    out->signed_ok = atomic_load(&st_ok);
    out->failed = atomic_load(&st_failed);
    out->reopened = atomic_load(&st_reopened);
    hub_histogram_atomic_snapshot(&st_latency, &out->latency);
}
