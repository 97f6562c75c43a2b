/* GET /v1/ca: the issuing CA and the root, as PEM or a PKCS#7 bundle. */
#include "api/chain.h"

#include "api/params.h"
#include "api/reply.h"

void hub_api_chain_show(struct hub_req *r)
{
    int p7b;
    if (hub_params_format(r, "pem", "p7b", &p7b) != 0)
        return;
    hub_buf_t out = HUB_BUF_INIT;
    int rc = p7b ? hub_authority_chain_p7b(r->api->authority, &out)
                 : hub_authority_chain_pem(r->api->authority, &out);
    if (rc != 0)
        hub_reply_internal(r, rc, "CA chain");
    else
        hub_reply_raw(r, 200,
                      p7b ? "application/pkcs7-mime; smime-type=certs-only"
                          : "application/pem-certificate-chain",
                      out.data, out.len);
    hub_reply_header(r, "Cache-Control", "public, max-age=3600");
    hub_buf_free(&out);
}
