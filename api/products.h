/* POST/GET /v1/products: products, under which devices are provisioned. */
#ifndef HUB_API_PRODUCTS_H
#define HUB_API_PRODUCTS_H

#include "api/request.h"

/* POST /v1/products {"name"}: 201 with the product key and its secret (shown once). */
void hub_api_products_create(struct hub_req *r);
/* GET /v1/products. */
void hub_api_products_list(struct hub_req *r);

#endif
