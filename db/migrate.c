#include "db/migrate.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"
#include "util/error.h"
#include "util/log.h"

/* Arbitrary constant naming iothub's migration lock. */
#define MIGRATION_LOCK "7234001"

static const char create_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static int is_applied(PGconn *c, int version, int *yes)
{
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *p[] = {v};
    PGresult *r;
    int rc = hub_db_exec(c, &r, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, p);
    if (rc != 0)
        return rc;
    *yes = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

int hub_db_migrate_apply(PGconn *c, int *applied)
{
    *applied = 0;
    int rc = hub_db_exec(c, NULL, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", 0, NULL);
    if (rc != 0)
        return rc;
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    rc = hub_db_exec(c, NULL, create_table, 0, NULL);
    for (const struct hub_migration *m = hub_db_migrations; rc == 0 && m->sql; m++) {
        int done;
        rc = is_applied(c, m->version, &done);
        if (rc != 0 || done)
            continue;
        char v[16];
        snprintf(v, sizeof v, "%d", m->version);
        const char *p[] = {v, m->name};
        rc = hub_db_begin(c);
        if (rc == 0)
            rc = hub_db_exec_script(c, m->sql);
        if (rc == 0)
            rc = hub_db_exec(c, NULL,
                             "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                             p);
        if (rc == 0)
            rc = hub_db_commit(c);
        if (rc != 0) {
            hub_db_rollback(c);
            hub_error("migration %s failed; the database is left at the previous version",
                      m->name);
            break;
        }
        hub_info("applied migration %s", m->name);
        (*applied)++;
    }
    PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")"));
    PQclear(PQexec(c, "SET client_min_messages = notice"));
    return rc;
}

int hub_db_migrate_check(PGconn *c, int *missing)
{
    *missing = 0;
    PGresult *r;
    int rc = hub_db_exec(c, &r, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL);
    if (rc != 0)
        return rc;
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    for (const struct hub_migration *m = hub_db_migrations; m->sql; m++) {
        int done = 0;
        if (exists && (rc = is_applied(c, m->version, &done)) != 0)
            return rc;
        *missing += !done;
    }
    return *missing ? HUB_ENOTFOUND : 0;
}
