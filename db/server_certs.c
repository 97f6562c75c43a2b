#include "db/server_certs.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/error.h"

int hub_db_server_certs_list(PGconn *c, time_t min_not_after, struct hub_db_server_cert **out,
                             size_t *n)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)min_not_after);
    const char *p[] = {t};
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = hub_db_exec(c, &r,
                         "SELECT serial, der, key_sealed FROM certificates WHERE kind = 'server'"
                         " AND status = 'valid' AND not_after > to_timestamp($1)"
                         " ORDER BY not_after DESC LIMIT 64",
                         1, p);
    if (rc != 0)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    struct hub_db_server_cert *v = rows ? calloc(rows, sizeof *v) : NULL;
    if (rows > 0 && v == NULL)
        rc = HUB_ENOMEM;
    for (size_t i = 0; rc == 0 && i < rows; i++) {
        hub_db_get_text(r, (int)i, 0, v[i].serial, HUB_SERIAL_HEX);
        rc = hub_db_get_bytea(r, (int)i, 1, &v[i].der);
        if (rc == 0)
            rc = hub_db_get_bytea(r, (int)i, 2, &v[i].key_sealed);
    }
    PQclear(r);
    if (rc != 0) {
        hub_db_server_certs_free(v, rows);
        return rc;
    }
    *out = v;
    *n = rows;
    return 0;
}

void hub_db_server_certs_free(struct hub_db_server_cert *rows, size_t n)
{
    for (size_t i = 0; i < n && rows != NULL; i++) {
        hub_buf_free(&rows[i].der);
        hub_buf_free(&rows[i].key_sealed);
    }
    free(rows);
}
