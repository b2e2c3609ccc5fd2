/* infrastructure/store_postgres/im_pg_schema.h: the PostgreSQL schema of
 * the durable store, its versioned migrations, and the checks that keep the
 * server away from a database that is not its own.
 *
 * The schema lives in the connection's current schema (search_path's
 * first, "public" by default). imcore_schema holds one row: the
 * application marker 'imcore' and the schema version. Migrations run at
 * start in one transaction under an advisory lock, so two servers starting
 * at once on an empty database create it once. Nothing here logs. */
#ifndef IM_PG_SCHEMA_H
#define IM_PG_SCHEMA_H

#include <stdbool.h>
#include <libpq-fe.h>
#include "imcore/errors.h"

/* The schema version this build writes. */
int im_pg_schema_version(void);

/* Brings the database conn is connected to up to im_pg_schema_version().
 * conn must be idle, outside pipeline mode. *created: the schema was made
 * now (a first start). Refused with nothing written, IM_EIO and err saying
 * which: a database whose imcore_schema names another application or a
 * newer version, or one with tables but no imcore_schema (a foreign
 * schema). Errors: IM_EIO (also a failed migration, rolled back). */
int im_pg_schema_migrate(PGconn *conn, bool *created, im_error *err);

#endif
