#include "db/services.h"

int hub_db_services_secret(PGconn *c, const char *service_id, struct hub_db_secret *out)
{
    return hub_db_query_secret(
        c, "SELECT 0, secret_hash, status, name FROM services WHERE id = $1::uuid", service_id,
        out);
}

int hub_db_services_insert(PGconn *c, const char *name, const char *publish_json,
                           const char *subscribe_json, const char *secret_hash, char service_id[37])
{
    const char *p[] = {name, publish_json, subscribe_json, secret_hash};
    return hub_db_query_text(c,
                             "INSERT INTO services (name, publish, subscribe, secret_hash)"
                             " VALUES ($1, ARRAY(SELECT jsonb_array_elements_text($2::jsonb)),"
                             " ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4)"
                             " RETURNING id",
                             4, p, service_id, 37);
}

int hub_db_services_acl(PGconn *c, const char *service_id, json_t **out)
{
    const char *p[] = {service_id};
    return hub_db_query_json(c,
                             "SELECT json_build_object('status', status, 'publish', publish,"
                             " 'subscribe', subscribe) FROM services WHERE id = $1::uuid",
                             1, p, out);
}

int hub_db_services_set_status(PGconn *c, const char *service_id, const char *status)
{
    const char *p[] = {service_id, status};
    return hub_db_exec_one(c, "UPDATE services SET status = $2 WHERE id = $1::uuid", 2, p);
}

int hub_db_services_lock(PGconn *c, const char *service_id, char status[16])
{
    const char *p[] = {service_id};
    return hub_db_query_text(c, "SELECT status FROM services WHERE id = $1::uuid FOR UPDATE", 1, p,
                             status, 16);
}
