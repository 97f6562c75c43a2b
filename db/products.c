#include "db/products.h"

int hub_db_products_secret(PGconn *c, const char *product_key, struct hub_db_secret *out)
{
    return hub_db_query_secret(
        c, "SELECT id, secret_hash, '', '' FROM products WHERE product_key = $1", product_key, out);
}

int hub_db_products_insert(PGconn *c, const char *product_key, const char *name,
                           const char *secret_hash)
{
    const char *p[] = {product_key, name, secret_hash};
    return hub_db_exec(
        c, NULL, "INSERT INTO products (product_key, name, secret_hash) VALUES ($1, $2, $3)", 3, p);
}

int hub_db_products_list(PGconn *c, json_t **out)
{
    return hub_db_query_json(
        c,
        "SELECT coalesce(json_agg(json_build_object('product_key', product_key,"
        " 'name', name, 'created_at', rfc3339(created_at),"
        " 'devices', (SELECT count(*) FROM devices d WHERE d.product_id = p.id))"
        " ORDER BY id), '[]') FROM products p",
        0, NULL, out);
}
