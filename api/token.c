#include "api/token.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha256.h>

#include "db/tokens.h"
#include "util/error.h"
#include "util/secure.h"

static const char *const roles[] = {"admin", "operator", "provisioner", "auditor"};

int hub_token_role_valid(const char *role)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0)
            return 1;
    return 0;
}

/* Base64url without padding: 32 bytes -> 43 characters. */
static void b64url(const uint8_t in[32], char out[44])
{
    unsigned char tmp[48];
    size_t n;
    mbedtls_base64_encode(tmp, sizeof tmp, &n, in, 32);
    size_t j = 0;
    for (size_t i = 0; i < n && tmp[i] != '='; i++)
        out[j++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : (char)tmp[i];
    out[j] = 0;
}

int hub_token_create(PGconn *c, const char *name, const char *role, char *out, size_t outlen)
{
    if (!hub_token_role_valid(role) || outlen <= HUB_TOKEN_LEN)
        return HUB_EINVAL;
    uint8_t id_raw[HUB_TOKEN_ID_LEN / 2], secret[32], hash[32];
    char id[HUB_TOKEN_ID_LEN + 1], secret_txt[44];
    if (hub_random(id_raw, sizeof id_raw) != 0 || hub_random(secret, sizeof secret) != 0)
        return HUB_EIO;
    hub_hex_lower(id_raw, sizeof id_raw, id);
    b64url(secret, secret_txt);
    mbedtls_sha256_ret((const unsigned char *)secret_txt, strlen(secret_txt), hash, 0);
    int rc = hub_db_tokens_insert(c, id, name, role, hash);
    if (rc == 0)
        snprintf(out, outlen, "iothub_%s_%s", id, secret_txt);
    hub_wipe(secret, sizeof secret);
    hub_wipe(secret_txt, sizeof secret_txt);
    return rc;
}

int hub_token_parse(const char *token, char id[HUB_TOKEN_ID_LEN + 1], uint8_t hash[32])
{
    if (strlen(token) != HUB_TOKEN_LEN || strncmp(token, "iothub_", 7) != 0 ||
        token[7 + HUB_TOKEN_ID_LEN] != '_')
        return HUB_EINVAL;
    for (size_t i = 0; i < HUB_TOKEN_ID_LEN; i++) {
        char ch = token[7 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return HUB_EINVAL;
        id[i] = ch;
    }
    id[HUB_TOKEN_ID_LEN] = 0;
    const char *secret = token + 8 + HUB_TOKEN_ID_LEN;
    mbedtls_sha256_ret((const unsigned char *)secret, strlen(secret), hash, 0);
    return 0;
}
