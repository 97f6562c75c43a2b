/* Unit tests for the device CAs of net/trust.c (verify, classify, CRL, disable, the refusal
 * ring) and the JIT device id of server/registration.c. The certificates were made once with
 * openssl (P-256, valid 100 years): "fab" is a device CA, "twin" another CA with the same
 * subject and its own key; d1, d2 are signed by fab (fab's CRL lists d2), d3 by twin. */
#include <string.h>

#include <mbedtls/x509_crt.h>

#include "net/trust.h"
#include "server/registration.h"
#include "tests/unit/harness.h"

static const char FAB[] = "-----BEGIN CERTIFICATE-----\n"
                          "MIIBuDCCAV2gAwIBAgIUY6eL8Bu/oUcOOLK83fqW7Mpgj0cwCgYIKoZIzj0EAwIw\n"
                          "KDEOMAwGA1UECgwFTWFrZXIxFjAUBgNVBAMMDUZhYiBkZXZpY2UgQ0EwIBcNMjYx\n"
                          "MjA3MTI1NDM3WhgPMjEyNjExMTMxMjU0MzdaMCgxDjAMBgNVBAoMBU1ha2VyMRYw\n"
                          "FAYDVQQDDA1GYWIgZGV2aWNlIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
                          "3lnl2ZmZyZDBoWktL99XtnxuL4OterMHnvIc3uR5THcAbfdNEdg5LFvH16A7esVx\n"
                          "1WBClTli/Pzu+L8EfW1xm6NjMGEwHQYDVR0OBBYEFLAeITRIkpqkmX6TxKfCiEtB\n"
                          "/UhXMB8GA1UdIwQYMBaAFLAeITRIkpqkmX6TxKfCiEtB/UhXMA8GA1UdEwEB/wQF\n"
                          "MAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49BAMCA0kAMEYCIQDRk3YGo6gr\n"
                          "3y/Pwyr/gJZcveYhIw195pj296RMLPd0vwIhAJwpWeiQclW4X4I0Ls+N3GCmSL1y\n"
                          "1HOskdY1tu5EITM7\n"
                          "-----END CERTIFICATE-----\n";

static const char TWIN[] = "-----BEGIN CERTIFICATE-----\n"
                           "MIIBtjCCAV2gAwIBAgIULhn1CiiuHejvpUwvOVe9lDdR1CUwCgYIKoZIzj0EAwIw\n"
                           "KDEOMAwGA1UECgwFTWFrZXIxFjAUBgNVBAMMDUZhYiBkZXZpY2UgQ0EwIBcNMjYx\n"
                           "MjA3MTI1NDM3WhgPMjEyNjExMTMxMjU0MzdaMCgxDjAMBgNVBAoMBU1ha2VyMRYw\n"
                           "FAYDVQQDDA1GYWIgZGV2aWNlIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
                           "cgWbHg4/Gh1mSeHvay1xWMYRi2+g1gwVorNJ0Qfmdfx5tt7FluO9h0DVOoG4XU4/\n"
                           "HMoJmxyNvxHPAT8QCmrdz6NjMGEwHQYDVR0OBBYEFC0M8wzJSo4zDgXzeKJ92hy4\n"
                           "bMfMMB8GA1UdIwQYMBaAFC0M8wzJSo4zDgXzeKJ92hy4bMfMMA8GA1UdEwEB/wQF\n"
                           "MAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49BAMCA0cAMEQCIEG8+GZt9Zef\n"
                           "V1m4VjtzfMYcwJXVU0PnQO4TBnCQSlwhAiBGrr0wDiN2zxRRz/t1Mf2kNxvZnrtJ\n"
                           "htcuFsWE7q3aiQ==\n"
                           "-----END CERTIFICATE-----\n";

static const char D1[] = "-----BEGIN CERTIFICATE-----\n"
                         "MIIBmzCCAUGgAwIBAgICegEwCgYIKoZIzj0EAwIwKDEOMAwGA1UECgwFTWFrZXIx\n"
                         "FjAUBgNVBAMMDUZhYiBkZXZpY2UgQ0EwIBcNMjYxMjA3MTI1NDM4WhgPMjEyNjEx\n"
                         "MTMxMjU0MzhaMA8xDTALBgNVBAMMBFNOLTEwWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
                         "BwNCAATllFcfNNQL/gziMzIROPtePtAp8/mnBZPZdcntJweb6X5NkvojPoZIvI17\n"
                         "B6jJwa3rsTZJnxmwr96fkVRDacWxo3IwcDAJBgNVHRMEAjAAMA4GA1UdDwEB/wQE\n"
                         "AwIHgDATBgNVHSUEDDAKBggrBgEFBQcDAjAdBgNVHQ4EFgQUNd/FuKvUMNXbY5Tp\n"
                         "u9hkCHZUxUMwHwYDVR0jBBgwFoAUsB4hNEiSmqSZfpPEp8KIS0H9SFcwCgYIKoZI\n"
                         "zj0EAwIDSAAwRQIhAIzBk6Azwf9RnHd+S4BfFh5msuVajJrg9CSb7KZfNF/oAiBf\n"
                         "xiTL7OOKJo9DeZscezIiNpFX6XYj07y8l5E6t432sw==\n"
                         "-----END CERTIFICATE-----\n";

static const char D2[] = "-----BEGIN CERTIFICATE-----\n"
                         "MIIBnDCCAUGgAwIBAgICegIwCgYIKoZIzj0EAwIwKDEOMAwGA1UECgwFTWFrZXIx\n"
                         "FjAUBgNVBAMMDUZhYiBkZXZpY2UgQ0EwIBcNMjYxMjA3MTI1NDM5WhgPMjEyNjEx\n"
                         "MTMxMjU0MzlaMA8xDTALBgNVBAMMBFNOLTIwWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
                         "BwNCAASKd5UzSrZAgTidDRNNIsbceIgIjhNDTWcGthKWwjhwiqVoRp6VBBfbed7v\n"
                         "t835d8he/tNYQPUSbIPx0CjBjAzmo3IwcDAJBgNVHRMEAjAAMA4GA1UdDwEB/wQE\n"
                         "AwIHgDATBgNVHSUEDDAKBggrBgEFBQcDAjAdBgNVHQ4EFgQUvP98Zac7Vt6F/fX+\n"
                         "+P4CUN6PFzEwHwYDVR0jBBgwFoAUsB4hNEiSmqSZfpPEp8KIS0H9SFcwCgYIKoZI\n"
                         "zj0EAwIDSQAwRgIhANb0mqse01WN3sk7gyLcW/O8lLnUo8GgDuliQ8g84iI9AiEA\n"
                         "u1mQOr9vYOi16/xOIwNboZ7wTtf2M277W0AZ+vy0Gro=\n"
                         "-----END CERTIFICATE-----\n";

static const char D3[] = "-----BEGIN CERTIFICATE-----\n"
                         "MIIBmzCCAUGgAwIBAgICewEwCgYIKoZIzj0EAwIwKDEOMAwGA1UECgwFTWFrZXIx\n"
                         "FjAUBgNVBAMMDUZhYiBkZXZpY2UgQ0EwIBcNMjYxMjA3MTI1NDQwWhgPMjEyNjEx\n"
                         "MTMxMjU0NDBaMA8xDTALBgNVBAMMBFNOLTMwWTATBgcqhkjOPQIBBggqhkjOPQMB\n"
                         "BwNCAAR94zlQ9slk1pKGmibpRStvzs4o4sU26sRU325nGJXNaWdvG+PW17KGr6aN\n"
                         "WlN5QLRS88rDNDKP5GA9AkMMQZILo3IwcDAJBgNVHRMEAjAAMA4GA1UdDwEB/wQE\n"
                         "AwIHgDATBgNVHSUEDDAKBggrBgEFBQcDAjAdBgNVHQ4EFgQUVEDiRnKxBo3spZT8\n"
                         "DpnRfIWgfjQwHwYDVR0jBBgwFoAULQzzDMlKjjMOBfN4on3aHLhsx8wwCgYIKoZI\n"
                         "zj0EAwIDSAAwRQIhAP7fl3G+O6znrMMqIYK6eQ51zhxRTW0EUcnw8hVQ4GleAiBx\n"
                         "1T3tkP8AwOGF8xUD0Q1pSXbAdSDpFbxTnl8wBQF/Mg==\n"
                         "-----END CERTIFICATE-----\n";

static const char FAB_CRL[] = "-----BEGIN X509 CRL-----\n"
                              "MIHYMIGAAgEBMAoGCCqGSM49BAMCMCgxDjAMBgNVBAoMBU1ha2VyMRYwFAYDVQQD\n"
                              "DA1GYWIgZGV2aWNlIENBFw0yNjEyMDcxMjU0NDBaGA8yMTI2MTExMzEyNTQ0MFow\n"
                              "FTATAgJ6AhcNMjYxMjA3MTI1NDQwWqAOMAwwCgYDVR0UBAMCAQEwCgYIKoZIzj0E\n"
                              "AwIDRwAwRAIgPYqDyuhae3PROfDqDb9f00rxo9QzPV4HZZS1FXkmaokCIHZLmw+F\n"
                              "HY3YvzZeCRSkeL89YVd9uf5fGkujJBAJfy17\n"
                              "-----END X509 CRL-----\n";

static const char FAB_ID[] = "11111111-1111-4111-8111-111111111111";

static void parse(mbedtls_x509_crt *c, const char *pem)
{
    mbedtls_x509_crt_init(c);
    CHECK_EQ(mbedtls_x509_crt_parse(c, (const unsigned char *)pem, strlen(pem) + 1), 0);
}

/* The DER of a PEM CRL. */
static size_t crl_der(uint8_t *out, size_t cap)
{
    mbedtls_x509_crl crl;
    mbedtls_x509_crl_init(&crl);
    CHECK_EQ(mbedtls_x509_crl_parse(&crl, (const unsigned char *)FAB_CRL, sizeof FAB_CRL), 0);
    size_t n = crl.raw.len <= cap ? crl.raw.len : 0;
    memcpy(out, crl.raw.p, n);
    mbedtls_x509_crl_free(&crl);
    return n;
}

static void load(hub_trust_t *t, int enabled, int with_crl)
{
    mbedtls_x509_crt fab;
    uint8_t crl[2048];
    parse(&fab, FAB);
    size_t crl_len = crl_der(crl, sizeof crl);
    struct hub_trust_ca ca = {
        FAB_ID, enabled, fab.raw.p, fab.raw.len, with_crl ? crl : NULL, with_crl ? crl_len : 0};
    CHECK_EQ(hub_trust_replace(t, &ca, 1), enabled ? 1 : 0);
    mbedtls_x509_crt_free(&fab);
}

static void test_verify(void)
{
    hub_trust_t *t = hub_trust_new();
    mbedtls_x509_crt d1, d2, d3;
    parse(&d1, D1);
    parse(&d2, D2);
    parse(&d3, D3);
    char id[HUB_TRUST_ID_LEN + 1] = "";
    uint32_t flags = 0xff;
    CHECK_EQ(hub_trust_verify(t, &d1, &flags, id), 0); /* nothing loaded yet */
    load(t, 1, 1);
    CHECK_EQ(hub_trust_enabled(t), 1);
    CHECK_EQ(hub_trust_verify(t, &d1, &flags, id), 1);
    CHECK_EQ(flags, 0);
    CHECK_STR(id, FAB_ID);
    CHECK_EQ(hub_trust_verify(t, &d2, &flags, id), 1);
    CHECK(flags & MBEDTLS_X509_BADCERT_REVOKED);
    flags = 0xff;
    CHECK_EQ(hub_trust_verify(t, &d3, &flags, id), 0); /* same issuer name, another key */
    CHECK_EQ(flags, 0xff);
    CHECK_EQ(hub_trust_classify(t, &d1, NULL, id), HUB_TRUST_DEVICE);
    CHECK_EQ(hub_trust_classify(t, &d2, NULL, id), HUB_TRUST_REVOKED);
    CHECK_EQ(hub_trust_still_trusted(t, FAB_ID, d1.serial.p, d1.serial.len), 1);
    CHECK_EQ(hub_trust_still_trusted(t, FAB_ID, d2.serial.p, d2.serial.len), 0);
    load(t, 1, 0); /* the CRL withdrawn */
    CHECK_EQ(hub_trust_classify(t, &d2, NULL, id), HUB_TRUST_DEVICE);
    load(t, 0, 1); /* disabled */
    CHECK_EQ(hub_trust_verify(t, &d1, &flags, id), 0);
    CHECK_EQ(hub_trust_classify(t, &d1, NULL, id), HUB_TRUST_DISABLED);
    CHECK_EQ(hub_trust_still_trusted(t, FAB_ID, d1.serial.p, d1.serial.len), 0);
    CHECK_EQ(hub_trust_replace(t, NULL, 0), 0); /* gone */
    CHECK_EQ(hub_trust_classify(t, &d1, NULL, id), HUB_TRUST_UNKNOWN);
    mbedtls_x509_crt twin; /* issued by one of "our" CAs with the same name: ours */
    parse(&twin, TWIN);
    load(t, 1, 0);
    CHECK_EQ(hub_trust_classify(t, &d3, &twin, id), HUB_TRUST_OURS);
    CHECK_EQ(hub_trust_classify(t, &d1, &twin, id), HUB_TRUST_DEVICE);
    mbedtls_x509_crt_free(&twin);
    mbedtls_x509_crt_free(&d1);
    mbedtls_x509_crt_free(&d2);
    mbedtls_x509_crt_free(&d3);
    hub_trust_free(t);
}

static void test_not_a_ca(void)
{
    hub_trust_t *t = hub_trust_new();
    mbedtls_x509_crt d1;
    parse(&d1, D1);
    struct hub_trust_ca ca = {FAB_ID, 1, d1.raw.p, d1.raw.len, NULL, 0};
    CHECK_EQ(hub_trust_replace(t, &ca, 1), 0); /* an end-entity certificate is skipped */
    CHECK_EQ(hub_trust_known(t), 0);
    mbedtls_x509_crt_free(&d1);
    hub_trust_free(t);
}

static void test_refusals(void)
{
    hub_trust_t *t = hub_trust_new();
    mbedtls_x509_crt d1;
    parse(&d1, D1);
    load(t, 1, 0);
    for (int i = 0; i < HUB_TRUST_REFUSALS + 6; i++)
        hub_trust_note_refusal(t, "expired", "127.0.0.1:1", &d1);
    struct hub_trust_refusal out[HUB_TRUST_REFUSALS + 10];
    unsigned long long dropped;
    CHECK_EQ(hub_trust_take_refusals(t, out, 10, &dropped), 10);
    CHECK_EQ(dropped, 6);
    CHECK_STR(out[0].subject, "SN-1");
    CHECK_STR(out[0].issuer, "O=Maker, CN=Fab device CA");
    CHECK_STR(out[0].device_ca, FAB_ID);
    CHECK_STR(out[0].serial, "7A01");
    CHECK_EQ(hub_trust_take_refusals(t, out, HUB_TRUST_REFUSALS + 10, &dropped),
             HUB_TRUST_REFUSALS - 10);
    CHECK_EQ(dropped, 0);
    hub_trust_capture(t, &d1); /* what a verify callback saw, noted without the chain */
    hub_trust_note_refusal(t, "unknown_ca", "127.0.0.1:2", NULL);
    CHECK_EQ(hub_trust_take_refusals(t, out, 1, &dropped), 1);
    CHECK_STR(out[0].subject, "SN-1");
    CHECK_STR(out[0].reason, "unknown_ca");
    mbedtls_x509_crt_free(&d1);
    hub_trust_free(t);
}

/* The id a device computes offline: Python's uuid.uuid5(uuid.NAMESPACE_URL, "0123abcd/SN-0001"). */
static void test_device_id(void)
{
    char id[37];
    hub_registration_device_id("0123abcd", "SN-0001", id);
    CHECK_STR(id, "0051570f-fd48-53c8-9e01-d4da9c22ab73");
}

int main(void)
{
    RUN(test_verify);
    RUN(test_not_a_ca);
    RUN(test_refusals);
    RUN(test_device_id);
    HARNESS_EXIT();
}
