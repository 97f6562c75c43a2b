/* Unit tests for ca/p11uri: RFC 7512 URIs as ca_key_store takes them, and the redaction that
 * keeps a pin-value out of logs and PostgreSQL. */
#include <string.h>

#include "ca/p11uri.h"
#include "tests/unit/harness.h"
#include "util/error.h"

static void test_parse_full(void)
{
    struct hub_p11_uri u;
    char err[256];
    CHECK_EQ(hub_p11_uri_parse("pkcs11:token=My%20HSM;manufacturer=SoftHSM%20project;"
                               "serial=1a2b;model=SoftHSM%20v2;object=issuing-ca;id=%01%FF;"
                               "type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
                               "&pin-source=file:/etc/iothub/pin",
                               &u, err, sizeof err),
             0);
    CHECK_STR(u.token, "My HSM");
    CHECK_STR(u.manufacturer, "SoftHSM project");
    CHECK_STR(u.serial, "1a2b");
    CHECK_STR(u.model, "SoftHSM v2");
    CHECK_STR(u.object, "issuing-ca");
    CHECK_EQ(u.id_len, 2);
    CHECK(u.id[0] == 0x01 && u.id[1] == 0xff);
    CHECK_STR(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
    CHECK_STR(u.pin_source, "file:/etc/iothub/pin");
    CHECK_STR(u.pin_value, "");
}

static void test_parse_refusals(void)
{
    struct hub_p11_uri u;
    char err[256];
    const char *bad[] = {
        "",
        "pkcs12:token=a;object=b",
        "pkcs11:token=a",                    /* no object, no id */
        "pkcs11:token=a;object=b;slot-id=3", /* unsupported */
        "pkcs11:token=a;object=b?module-name=softhsm2",
        "pkcs11:token=a;object=b;type=cert",
        "pkcs11:token=a;object=b;object=c", /* duplicate */
        "pkcs11:token=a;object=b%2",        /* truncated escape */
        "pkcs11:token=a;object=b%zz",
        "pkcs11:token=a;object=b%00c",                             /* NUL in a text value */
        "pkcs11:token=a;object",                                   /* no value */
        "pkcs11:token=123456789012345678901234567890123;object=b", /* label over 32 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = hub_p11_uri_parse(bad[i], &u, err, sizeof err);
        CHECK_EQ(rc, HUB_EINVAL);
        CHECK(err[0] != 0);
    }
    CHECK_EQ(hub_p11_uri_parse("pkcs11:token=a;object=b?pin-value=s3cret;x", &u, err, sizeof err),
             HUB_EINVAL);
    CHECK(strstr(err, "s3cret") == NULL);
    CHECK_STR(u.pin_value, "");
}

static void test_redact(void)
{
    char out[HUB_P11_URI_MAX];
    CHECK_EQ(hub_p11_uri_redact("pkcs11:token=a;object=b?pin-value=1234", out, sizeof out), 0);
    CHECK_STR(out, "pkcs11:token=a;object=b");
    CHECK_EQ(hub_p11_uri_redact("pkcs11:token=a;object=b?pin-value=1234&module-path=/m.so", out,
                                sizeof out),
             0);
    CHECK_STR(out, "pkcs11:token=a;object=b?module-path=/m.so");
    CHECK_EQ(hub_p11_uri_redact("pkcs11:object=b?module-path=/m.so&pin-value=1&pin-source=/p", out,
                                sizeof out),
             0);
    CHECK_STR(out, "pkcs11:object=b?module-path=/m.so&pin-source=/p");
    CHECK_EQ(hub_p11_uri_redact("pkcs11:token=a;object=b", out, 10), HUB_ERANGE);
}

int main(void)
{
    RUN(test_parse_full);
    RUN(test_parse_refusals);
    RUN(test_redact);
    HARNESS_EXIT();
}
