/* infrastructure/store_postgres/im_pg_schema.c: the tables, the server-side
 * functions that do the per-request work, and the migrations that create
 * them.
 *
 * Why server-side functions: a batch is one transaction sent as one
 * pipeline, and an error aborts the pipeline's transaction, so a logical
 * refusal (a duplicate, a reused id, a receiver without an account, a group
 * change the data contradicts) must not be an error. Each function returns
 * a status (0, or the IM_E* code, or 1 for a duplicate) instead of raising,
 * and a batch costs one round trip whatever it holds.
 *
 * Shape of the data, as in the SQLite store (im_sqlite_db.c says why):
 * conversations(id, last_seq) hands out seq with one upsert ... RETURNING,
 * which row-locks the conversation until the transaction ends, so two
 * servers writing one conversation get gap-free, monotonic seqs; cursors
 * are what a user has acked; groups keep join order, each member's since,
 * the owner by name, and invitations. Ids are COLLATE "C" (byte order, as
 * the port asks of pending); client ids, the plugins' keys and values are
 * bytea, since they are bytes and need not be UTF-8.
 *
 * De-duplication: (sender, client_msg_id) is a unique index. An append
 * looks for the pair first; a resend finds it and spends nothing. Two
 * servers storing the same pair at once both miss it; the one that inserts
 * second waits on the unique index for the first to commit (ON CONFLICT DO
 * NOTHING), finds the row, and hands back the seq it took: it still holds
 * the conversation's row lock, so no one else can have taken a later seq,
 * and the sequence stays gap-free. */
#include "im_pg_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock migrations take (pg_advisory_xact_lock's two keys):
 * "imco", 1. */
#define MIGRATE_LOCK "1768776559, 1"

/* Migration i (from 1) takes the version from i - 1 to i. Never edit one
 * that has shipped: append. */
static const char *const migrations[] = {
    /* 1: everything. */
    "CREATE TABLE conversations ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  last_seq bigint NOT NULL CHECK (last_seq >= 0));"

    "CREATE TABLE messages ("
    "  conv text COLLATE \"C\" NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  seq bigint NOT NULL CHECK (seq > 0),"
    "  kind smallint NOT NULL CHECK (kind IN (1, 2)),"
    "  sender text COLLATE \"C\" NOT NULL,"
    "  target text COLLATE \"C\" NOT NULL,"
    "  client_msg_id bytea NOT NULL,"
    "  server_time_ms bigint NOT NULL,"
    "  body bytea NOT NULL,"
    "  PRIMARY KEY (conv, seq));"
    "CREATE UNIQUE INDEX messages_by_client_id ON messages (sender, client_msg_id);"

    "CREATE TABLE cursors ("
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  conv text COLLATE \"C\" NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  seq bigint NOT NULL CHECK (seq >= 0),"
    "  PRIMARY KEY (user_id, conv));"
    "CREATE INDEX cursors_by_conv ON cursors (conv);"

    "CREATE TABLE chat_groups ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  max_members integer NOT NULL CHECK (max_members > 0),"
    "  member_count integer NOT NULL CHECK (member_count >= 0),"
    "  created_ms bigint NOT NULL,"
    "  flags integer NOT NULL,"
    "  owner text COLLATE \"C\" NOT NULL,"
    "  creator text COLLATE \"C\" NOT NULL);"

    "CREATE TABLE group_members ("
    "  group_id text COLLATE \"C\" NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,"
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  join_order bigint NOT NULL,"
    "  joined_ms bigint NOT NULL,"
    "  since_seq bigint NOT NULL CHECK (since_seq >= 0),"
    "  PRIMARY KEY (group_id, user_id),"
    "  UNIQUE (group_id, join_order));"

    "CREATE TABLE group_invites ("
    "  group_id text COLLATE \"C\" NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,"
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  invited_ms bigint NOT NULL,"
    "  PRIMARY KEY (group_id, user_id));"

    "CREATE TABLE users ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  display_name text NOT NULL,"
    "  password_hash text NOT NULL,"
    "  created_ms bigint NOT NULL);"

    "CREATE TABLE tokens ("
    "  hash bytea PRIMARY KEY,"
    "  user_id text COLLATE \"C\" NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  expires_ms bigint NOT NULL,"
    "  issued bigint NOT NULL);"
    "CREATE INDEX tokens_by_user ON tokens (user_id, issued);"
    "CREATE INDEX tokens_by_expiry ON tokens (expires_ms);"

    "CREATE TABLE kv ("
    "  ns bytea NOT NULL,"
    "  key bytea NOT NULL,"
    "  value bytea NOT NULL,"
    "  PRIMARY KEY (ns, key));"

    /* Status: 0 stored, 1 duplicate (o_seq, o_time: the stored one's),
     * -28 (IM_EIDREUSED), -27 (IM_EUNKNOWNUSER). */
    "CREATE FUNCTION imcore_append(p_conv text, p_kind smallint, p_sender text,"
    "    p_target text, p_cmid bytea, p_time bigint, p_body bytea, p_check_receiver boolean,"
    "    OUT o_status integer, OUT o_seq bigint, OUT o_time bigint)"
    " LANGUAGE plpgsql AS $f$"
    " DECLARE r record;"
    " BEGIN"
    "  o_status := 0; o_seq := 0; o_time := p_time;"
    "  FOR pass IN 1..2 LOOP"
    "    SELECT m.seq, m.server_time_ms, m.kind, m.target, m.body INTO r FROM messages m"
    "      WHERE m.sender = p_sender AND m.client_msg_id = p_cmid;"
    "    IF FOUND THEN"
    "      IF r.kind = p_kind AND r.target = p_target AND r.body = p_body THEN"
    "        o_status := 1; o_seq := r.seq; o_time := r.server_time_ms;"
    "      ELSE o_status := -28; END IF;"
    "      RETURN;"
    "    END IF;"
    "    IF pass = 2 THEN RAISE EXCEPTION 'imcore: client id claimed and not found'; END IF;"
    "    IF p_check_receiver AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p_target) THEN"
    "      o_status := -27; RETURN;"
    "    END IF;"
    "    INSERT INTO conversations AS c (id, last_seq) VALUES (p_conv, 1)"
    "      ON CONFLICT (id) DO UPDATE SET last_seq = c.last_seq + 1 RETURNING c.last_seq INTO o_seq;"
    "    INSERT INTO messages (conv, seq, kind, sender, target, client_msg_id, server_time_ms, body)"
    "      VALUES (p_conv, o_seq, p_kind, p_sender, p_target, p_cmid, p_time, p_body)"
    "      ON CONFLICT (sender, client_msg_id) DO NOTHING;"
    "    IF FOUND THEN"
    "      IF p_kind = 1 THEN"
    "        INSERT INTO cursors (user_id, conv, seq) VALUES (p_target, p_conv, o_seq - 1)"
    "          ON CONFLICT (user_id, conv) DO NOTHING;"
    "      END IF;"
    "      UPDATE cursors SET seq = o_seq"
    "        WHERE user_id = p_sender AND conv = p_conv AND seq = o_seq - 1;"
    "      RETURN;"
    "    END IF;"
    /* Another transaction stored the pair first and has committed: the
     * seq goes back (the row is still ours), and the second pass answers. */
    "    UPDATE conversations SET last_seq = last_seq - 1 WHERE id = p_conv;"
    "    o_seq := 0;"
    "  END LOOP;"
    " END $f$;"

    /* The conversations of a batch locked first, one at a time in id
     * order (made when missing, at last_seq 0): two servers' batches wait
     * for each other in one order and cannot deadlock on them. */
    "CREATE FUNCTION imcore_lock(p_convs text[]) RETURNS integer LANGUAGE plpgsql AS $f$"
    " DECLARE v text; n integer := 0;"
    " BEGIN"
    "  FOR v IN SELECT DISTINCT u COLLATE \"C\" FROM unnest(p_convs) AS u ORDER BY 1 LOOP"
    "    PERFORM 1 FROM conversations WHERE id = v FOR UPDATE;"
    "    IF NOT FOUND THEN"
    "      INSERT INTO conversations (id, last_seq) VALUES (v, 0) ON CONFLICT (id) DO NOTHING;"
    "      PERFORM 1 FROM conversations WHERE id = v FOR UPDATE;"
    "    END IF;"
    "    n := n + 1;"
    "  END LOOP;"
    "  RETURN n;"
    " END $f$;"

    "CREATE FUNCTION imcore_ack(p_user text, p_conv text, p_seq bigint, p_group boolean)"
    " RETURNS integer LANGUAGE plpgsql AS $f$"
    " DECLARE last bigint; nxt bigint; s bigint := p_seq;"
    " BEGIN"
    "  SELECT c.last_seq INTO last FROM conversations c WHERE c.id = p_conv;"
    "  IF NOT FOUND THEN RETURN 0; END IF;"
    "  IF s > last THEN s := last; END IF;"
    /* The acker's own messages right after s are acked with it. */
    "  IF s < last THEN"
    "    SELECT m.seq INTO nxt FROM messages m WHERE m.conv = p_conv AND m.seq > s"
    "      AND m.sender <> p_user ORDER BY m.seq LIMIT 1;"
    "    IF FOUND THEN s := nxt - 1; ELSE s := last; END IF;"
    "  END IF;"
    "  IF p_group THEN"
    "    UPDATE cursors SET seq = s WHERE user_id = p_user AND conv = p_conv AND seq < s;"
    "  ELSE"
    "    INSERT INTO cursors AS k (user_id, conv, seq) VALUES (p_user, p_conv, s)"
    "      ON CONFLICT (user_id, conv) DO UPDATE SET seq = excluded.seq WHERE k.seq < excluded.seq;"
    "  END IF;"
    "  RETURN 0;"
    " END $f$;"

    /* The writes of a join: a conversation row, the member with since at
     * its last seq, and a cursor there. */
    "CREATE FUNCTION imcore_add_member(p_group text, p_user text, p_now bigint)"
    " RETURNS bigint LANGUAGE plpgsql AS $f$"
    " DECLARE v_conv text := 'g:' || p_group; v_last bigint;"
    " BEGIN"
    "  INSERT INTO conversations (id, last_seq) VALUES (v_conv, 0) ON CONFLICT (id) DO NOTHING;"
    "  SELECT c.last_seq INTO v_last FROM conversations c WHERE c.id = v_conv FOR UPDATE;"
    "  INSERT INTO group_members (group_id, user_id, join_order, joined_ms, since_seq)"
    "    VALUES (p_group, p_user, (SELECT coalesce(max(join_order), 0) + 1 FROM group_members"
    "                              WHERE group_id = p_group), p_now, v_last);"
    "  INSERT INTO cursors AS k (user_id, conv, seq) VALUES (p_user, v_conv, v_last)"
    "    ON CONFLICT (user_id, conv) DO UPDATE SET seq = excluded.seq;"
    "  RETURN v_last;"
    " END $f$;"

    /* p_kind: im_group_change_kind. Status 0 or -8 ENOGROUP, -9 EEXIST,
     * -10 EFULL, -11 ENOTMEMBER, -12 EMEMBER. */
    "CREATE FUNCTION imcore_group_change(p_kind integer, p_group text, p_user text,"
    "    p_max integer, p_flags integer, p_now bigint, OUT o_status integer, OUT o_since bigint)"
    " LANGUAGE plpgsql AS $f$"
    " DECLARE v_conv text := 'g:' || p_group; g record; inv boolean; invited bigint;"
    " BEGIN"
    "  o_status := 0; o_since := 0;"
    "  IF p_kind = 1 THEN"
    "    INSERT INTO chat_groups (id, max_members, member_count, created_ms, flags, owner, creator)"
    "      VALUES (p_group, p_max, 1, p_now, p_flags, p_user, p_user) ON CONFLICT (id) DO NOTHING;"
    "    IF NOT FOUND THEN o_status := -9; RETURN; END IF;"
    /* Messages under the id while no group had it belong to no one. */
    "    DELETE FROM conversations WHERE id = v_conv;"
    "    o_since := imcore_add_member(p_group, p_user, p_now);"
    "    RETURN;"
    "  END IF;"
    "  SELECT * INTO g FROM chat_groups WHERE id = p_group FOR UPDATE;"
    "  IF NOT FOUND THEN o_status := -8; RETURN; END IF;"
    "  IF p_kind = 7 THEN"
    "    DELETE FROM chat_groups WHERE id = p_group;"
    "    DELETE FROM conversations WHERE id = v_conv;"
    "    RETURN;"
    "  END IF;"
    "  PERFORM 1 FROM group_members WHERE group_id = p_group AND user_id = p_user;"
    "  IF p_kind IN (2, 4) AND FOUND THEN o_status := -12; RETURN; END IF;"
    "  IF p_kind IN (3, 6) AND NOT FOUND THEN o_status := -11; RETURN; END IF;"
    "  inv := EXISTS (SELECT 1 FROM group_invites WHERE group_id = p_group AND user_id = p_user);"
    "  IF p_kind = 2 THEN"
    "    IF (g.flags & 1) <> 0 AND NOT inv THEN o_status := -8; RETURN; END IF;"
    "    SELECT count(*) INTO invited FROM group_invites WHERE group_id = p_group;"
    "    IF g.member_count + invited - (CASE WHEN inv THEN 1 ELSE 0 END) >= g.max_members THEN"
    "      o_status := -10; RETURN;"
    "    END IF;"
    "    IF inv THEN"
    "      DELETE FROM group_invites WHERE group_id = p_group AND user_id = p_user;"
    "    END IF;"
    "    o_since := imcore_add_member(p_group, p_user, p_now);"
    "    UPDATE chat_groups SET member_count = member_count + 1 WHERE id = p_group;"
    "  ELSIF p_kind = 3 THEN"
    "    DELETE FROM group_members WHERE group_id = p_group AND user_id = p_user;"
    "    DELETE FROM cursors WHERE user_id = p_user AND conv = v_conv;"
    "    IF g.member_count <= 1 THEN"
    "      DELETE FROM chat_groups WHERE id = p_group;"
    "      DELETE FROM conversations WHERE id = v_conv;"
    "    ELSE"
    "      UPDATE chat_groups SET member_count = member_count - 1 WHERE id = p_group;"
    "      IF g.owner = p_user THEN"
    "        UPDATE chat_groups SET owner = coalesce((SELECT m.user_id FROM group_members m"
    "          WHERE m.group_id = p_group ORDER BY m.join_order LIMIT 1), '') WHERE id = p_group;"
    "      END IF;"
    "    END IF;"
    "  ELSIF p_kind = 4 THEN"
    "    IF inv THEN RETURN; END IF;"
    "    SELECT count(*) INTO invited FROM group_invites WHERE group_id = p_group;"
    "    IF g.member_count + invited >= g.max_members THEN o_status := -10; RETURN; END IF;"
    "    INSERT INTO group_invites (group_id, user_id, invited_ms) VALUES (p_group, p_user, p_now);"
    "  ELSIF p_kind = 5 THEN"
    "    IF NOT inv THEN o_status := -11; RETURN; END IF;"
    "    DELETE FROM group_invites WHERE group_id = p_group AND user_id = p_user;"
    "  ELSIF p_kind = 6 THEN"
    "    UPDATE chat_groups SET owner = p_user WHERE id = p_group;"
    "  END IF;"
    " END $f$;"

    /* p_op: im_account_op. Status 0 or -25 EUSEREXISTS, -23 ENOTFOUND. */
    "CREATE FUNCTION imcore_account(p_op integer, p_user text, p_name text, p_secret text,"
    "    p_token bytea, p_now bigint, p_expires bigint, p_keep bigint,"
    "    OUT o_status integer, OUT o_user text, OUT o_name text, OUT o_secret text,"
    "    OUT o_count bigint)"
    " LANGUAGE plpgsql AS $f$"
    " DECLARE t record;"
    " BEGIN"
    "  o_status := 0; o_count := 0;"
    "  IF p_op = 1 THEN"
    "    INSERT INTO users (id, display_name, password_hash, created_ms)"
    "      VALUES (p_user, coalesce(p_name, ''), p_secret, p_now) ON CONFLICT (id) DO NOTHING;"
    "    IF NOT FOUND THEN o_status := -25; RETURN; END IF;"
    "  ELSIF p_op = 2 THEN"
    "    SELECT u.id, u.display_name, u.password_hash INTO o_user, o_name, o_secret"
    "      FROM users u WHERE u.id = p_user;"
    "    IF NOT FOUND THEN o_status := -23; END IF;"
    "    RETURN;"
    "  ELSIF p_op = 3 THEN"
    "    PERFORM 1 FROM users u WHERE u.id = p_user FOR UPDATE;"
    "    IF NOT FOUND THEN o_status := -23; RETURN; END IF;"
    "  ELSIF p_op = 4 THEN"
    "    SELECT k.user_id, k.expires_ms, u.display_name INTO t FROM tokens k"
    "      JOIN users u ON u.id = k.user_id WHERE k.hash = p_token;"
    "    IF NOT FOUND THEN o_status := -23; RETURN; END IF;"
    "    IF p_now >= t.expires_ms THEN"
    "      DELETE FROM tokens WHERE hash = p_token;"
    "      o_status := -23; RETURN;"
    "    END IF;"
    "    o_user := t.user_id; o_name := t.display_name;"
    "    RETURN;"
    "  ELSIF p_op = 5 THEN"
    "    DELETE FROM tokens WHERE hash = p_token;"
    "    RETURN;"
    "  ELSIF p_op = 6 THEN"
    "    DELETE FROM tokens WHERE user_id = p_user;"
    "    GET DIAGNOSTICS o_count = ROW_COUNT;"
    "    RETURN;"
    "  ELSIF p_op = 7 THEN"
    "    DELETE FROM tokens WHERE hash IN (SELECT k.hash FROM tokens k"
    "      WHERE k.expires_ms <= p_now ORDER BY k.expires_ms LIMIT p_keep);"
    "    GET DIAGNOSTICS o_count = ROW_COUNT;"
    "    RETURN;"
    "  END IF;"
    /* CREATE with a token, and TOKEN_PUT: the token as the user's newest. */
    "  IF p_token IS NULL THEN RETURN; END IF;"
    "  INSERT INTO tokens AS k (hash, user_id, expires_ms, issued) VALUES (p_token, p_user,"
    "    p_expires, (SELECT coalesce(max(x.issued), 0) + 1 FROM tokens x WHERE x.user_id = p_user))"
    "    ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id,"
    "    expires_ms = excluded.expires_ms, issued = excluded.issued;"
    "  IF p_keep > 0 THEN"
    "    DELETE FROM tokens WHERE hash IN (SELECT k.hash FROM tokens k WHERE k.user_id = p_user"
    "      ORDER BY k.issued DESC, k.expires_ms DESC OFFSET p_keep);"
    "  END IF;"
    " END $f$;",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int im_pg_schema_version(void)
{
    return SCHEMA_VERSION;
}

/* Runs sql (no parameters); IM_OK or IM_EIO with what and the server's
 * message. A result with rows is handed back in *out when out is set. */
static int run(PGconn *conn, const char *sql, PGresult **out, im_error *err, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(res);
        return im_error_set(err, IM_EIO, "postgres: %s: %s", what, msg);
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return IM_OK;
}

/* Reads, and only reads, whose schema this is: *version (0: none yet). */
static int check_identity(PGconn *conn, int *version, im_error *err)
{
    PGresult *res = NULL;
    int rc = run(conn, "SELECT to_regclass('imcore_schema') IS NOT NULL,"
                       " (SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                       "   ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
                       "   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')),"
                       " current_schema()",
                 &res, err, "reading the schema");
    if (rc != IM_OK)
        return rc;
    bool have = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    long tables = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    char schema[64];
    snprintf(schema, sizeof schema, "%s", PQgetisnull(res, 0, 2) ? "(none)" : PQgetvalue(res, 0, 2));
    PQclear(res);
    *version = 0;
    if (!have) {
        if (tables > 0)
            return im_error_set(err, IM_EIO, "postgres: schema %s holds %ld tables and no"
                                " imcore_schema: not an imcore database (use an empty database"
                                " or schema)", schema, tables);
        return IM_OK;
    }
    rc = run(conn, "SELECT application, version FROM imcore_schema", &res, err,
             "reading imcore_schema");
    if (rc != IM_OK)
        return rc;
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "imcore") != 0) {
        PQclear(res);
        return im_error_set(err, IM_EIO, "postgres: schema %s: imcore_schema does not name"
                            " imcore: not an imcore database", schema);
    }
    long v = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    if (v > SCHEMA_VERSION)
        return im_error_set(err, IM_EIO, "postgres: schema %s: version %ld is newer than this"
                            " server (%d): refusing to touch it", schema, v, SCHEMA_VERSION);
    if (v < 0)
        return im_error_set(err, IM_EIO, "postgres: schema %s: version %ld: not an imcore"
                            " database", schema, v);
    *version = (int)v;
    return IM_OK;
}

int im_pg_schema_migrate(PGconn *conn, bool *created, im_error *err)
{
    *created = false;
    int rc = run(conn, "BEGIN", NULL, err, "begin");
    /* Two servers starting at once: the second waits here, then finds the
     * schema the first made. */
    if (rc == IM_OK)
        rc = run(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")", NULL, err,
                 "taking the migration lock");
    int version = 0;
    if (rc == IM_OK)
        rc = check_identity(conn, &version, err);
    if (rc == IM_OK && version == 0) {
        *created = true;
        rc = run(conn, "CREATE TABLE imcore_schema ("
                       "  application text NOT NULL,"
                       "  version integer NOT NULL,"
                       "  one boolean PRIMARY KEY DEFAULT true CHECK (one));"
                       "INSERT INTO imcore_schema (application, version) VALUES ('imcore', 0)",
                 NULL, err, "creating imcore_schema");
    }
    for (int v = version; rc == IM_OK && v < SCHEMA_VERSION; v++) {
        char what[64], sql[96];
        snprintf(what, sizeof what, "migration to schema version %d", v + 1);
        rc = run(conn, migrations[v], NULL, err, what);
        snprintf(sql, sizeof sql, "UPDATE imcore_schema SET version = %d", v + 1);
        if (rc == IM_OK)
            rc = run(conn, sql, NULL, err, what);
    }
    if (rc == IM_OK)
        return run(conn, "COMMIT", NULL, err, "committing the schema");
    PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}
