/* Schema migrations: db/migrations/NNN_name.sql, embedded at build time, applied in order,
 * each in its own transaction, recorded in schema_migrations. */
#ifndef HUB_DB_MIGRATE_H
#define HUB_DB_MIGRATE_H

#include <libpq-fe.h>

struct hub_migration {
    int version;
    const char *name;
    const char *sql;
};

/* The embedded migrations, ordered by version, ending with a zero entry. */
extern const struct hub_migration hub_db_migrations[];

/* Applies every pending migration; *applied gets how many ran. Serialised across
 * processes with an advisory lock. Returns 0 or a HUB_E* code. */
int hub_db_migrate_apply(PGconn *c, int *applied);
/* Returns 0 when the database has every embedded migration, HUB_ENOTFOUND when some are
 * missing (*missing = how many), or a HUB_E* code. */
int hub_db_migrate_check(PGconn *c, int *missing);

#endif
