/* Unit tests for db/db.c: the helpers that need no server (bytea parameters, copies of result
 * cells), on results built with libpq's PQmakeEmptyPGresult/PQsetvalue. */
#include <string.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "tests/unit/harness.h"
#include "util/buf.h"
#include "util/error.h"

/* A one-row result of text columns; NULL entries are SQL NULL. */
static PGresult *row_of(int ncols, const char *const *cells)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[4];
    memset(attrs, 0, sizeof attrs);
    for (int i = 0; i < ncols; i++) {
        attrs[i].name = (char *)"c";
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    if (r == NULL || !PQsetResultAttrs(r, ncols, attrs)) {
        PQclear(r);
        return NULL;
    }
    for (int i = 0; i < ncols; i++) {
        int len = cells[i] ? (int)strlen(cells[i]) : -1;
        if (!PQsetvalue(r, 0, i, (char *)cells[i], len)) {
            PQclear(r);
            return NULL;
        }
    }
    return r;
}

static void test_bytea_param(void)
{
    const uint8_t in[] = {0x00, 0xab, 0x7f, 0xff, 0x10};
    hub_buf_t b = HUB_BUF_INIT;
    CHECK_EQ(hub_db_bytea_param(in, sizeof in, &b), 0);
    CHECK_STR((char *)b.data, "\\x00ab7fff10");
    CHECK_EQ(b.len, 12);
    hub_buf_free(&b);
    CHECK_EQ(hub_db_bytea_param(in, 0, &b), 0);
    CHECK_STR((char *)b.data, "\\x");
    hub_buf_free(&b);
}

static void test_get_text(void)
{
    const char *cells[] = {"abcdef", NULL, ""};
    PGresult *r = row_of(3, cells);
    CHECK(r != NULL);
    if (r == NULL)
        return;
    char small[4], big[16];
    hub_db_get_text(r, 0, 0, small, sizeof small);
    CHECK_STR(small, "abc"); /* truncated to the buffer, NUL-terminated */
    hub_db_get_text(r, 0, 0, big, sizeof big);
    CHECK_STR(big, "abcdef");
    memcpy(big, "junk", 5);
    hub_db_get_text(r, 0, 1, big, sizeof big);
    CHECK_STR(big, ""); /* SQL NULL */
    hub_db_get_text(r, 0, 2, big, sizeof big);
    CHECK_STR(big, "");
    PQclear(r);
}

static void test_get_bytea_round_trip(void)
{
    uint8_t in[256];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(255 - i);
    hub_buf_t param = HUB_BUF_INIT, out = HUB_BUF_INIT;
    CHECK_EQ(hub_db_bytea_param(in, sizeof in, &param), 0);
    const char *cells[] = {(char *)param.data};
    PGresult *r = row_of(1, cells);
    CHECK(r != NULL);
    if (r != NULL) {
        CHECK_EQ(hub_buf_append(&out, "x", 1), 0); /* appends to what is there */
        CHECK_EQ(hub_db_get_bytea(r, 0, 0, &out), 0);
        CHECK_EQ(out.len, 1 + sizeof in);
        CHECK(out.len == 1 + sizeof in && memcmp(out.data + 1, in, sizeof in) == 0);
        PQclear(r);
    }
    hub_buf_free(&param);
    hub_buf_free(&out);
}

int main(void)
{
    RUN(test_bytea_param);
    RUN(test_get_text);
    RUN(test_get_bytea_round_trip);
    HARNESS_EXIT();
}
