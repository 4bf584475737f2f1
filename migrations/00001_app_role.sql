-- The application role and the row-level security setting.
--
-- Tone's server connects as tone_app: a LOGIN role that is not a superuser,
-- lacks BYPASSRLS and owns nothing, so every tenant table's FORCE'd
-- row-level security policies apply to it. Tables, functions and policies are
-- owned by the role that runs the migrations, which must be a superuser or
-- have BYPASSRLS: the SECURITY DEFINER helpers that the policies call run as
-- that role and read membership tables, and if those reads were themselves
-- subject to the policies they would recurse.
--
-- The role is cluster-wide and may serve several databases, so it is created
-- only if absent (an operator may have created it with a password) and never
-- dropped by a down migration. Each migration grants tone_app exactly the
-- privileges its tables need; later tables follow the same pattern.
--
-- Who the current user is comes from the transaction-local setting
-- tone.user_id (set_config('tone.user_id', id, true), never session-wide),
-- read by tone_user_id(). A missing or empty setting reads as NULL, and every
-- policy compares against it with = or = ANY, so without it no tenant row is
-- visible or writable: the policies fail closed.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                   WHERE rolname = current_user AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'tone migrations must run as a superuser or a role with BYPASSRLS, not as %', current_user
            USING HINT = 'The row-level security helper functions run as the migrating role and must not be subject to the policies they implement.';
    END IF;

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tone_app') THEN
        BEGIN
            CREATE ROLE tone_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database's migration created it at the same moment
        END;
    END IF;

    -- A pre-existing role must not be able to step around row-level security.
    IF EXISTS (SELECT FROM pg_catalog.pg_roles r
               WHERE (r.rolsuper OR r.rolbypassrls)
                 AND (r.rolname = 'tone_app' OR pg_catalog.pg_has_role('tone_app', r.oid, 'MEMBER'))) THEN
        RAISE EXCEPTION 'role tone_app is, or is a member of, a superuser or BYPASSRLS role: row-level security would not apply to it';
    END IF;

    EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO tone_app', current_database());
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO tone_app;

-- tone_user_id returns the user the current transaction acts for, or NULL
-- when tone.user_id is missing or empty. A value that is not a UUID is an
-- error, not a user.
CREATE FUNCTION public.tone_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(pg_catalog.current_setting('tone.user_id', true), '')::uuid $$;

REVOKE ALL ON FUNCTION public.tone_user_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_user_id() TO tone_app;

-- +goose Down
DROP FUNCTION public.tone_user_id();
REVOKE USAGE ON SCHEMA public FROM tone_app;
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE pg_catalog.format('REVOKE CONNECT ON DATABASE %I FROM tone_app', current_database());
END
$$;
-- +goose StatementEnd
