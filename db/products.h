/* Rows of products. Blocking calls on a caller-owned connection, from a worker thread. */
#ifndef HUB_DB_PRODUCTS_H
#define HUB_DB_PRODUCTS_H

#include <jansson.h>
#include <libpq-fe.h>

#include "db/db.h"

/* A product's id and secret hash by its key (product claims). HUB_ENOTFOUND when unknown. */
int hub_db_products_secret(PGconn *c, const char *product_key, struct hub_db_secret *out);
/* Creates a product; HUB_EEXIST on a taken key. */
int hub_db_products_insert(PGconn *c, const char *product_key, const char *name,
                           const char *secret_hash);
/* All products with their device counts as a JSON array (the caller json_decref()s it). */
int hub_db_products_list(PGconn *c, json_t **out);

#endif
