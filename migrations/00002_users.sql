-- Accounts and refresh tokens.
--
-- users and refresh_tokens are not tenant tables and have no row-level
-- security: login, registration and token refresh need them before anyone is
-- known (the transaction's tone.user_id is empty then). The application role
-- reaches every row; what it may change is limited by column privileges.

-- +goose Up
CREATE TABLE users (
    id            uuid PRIMARY KEY, -- UUIDv7, made by the application
    email         text NOT NULL,
    password_hash text NOT NULL,    -- argon2id PHC string
    display_name  text NOT NULL,
    avatar_url    text NOT NULL DEFAULT '',
    time_zone     text NOT NULL DEFAULT '',
    preferences   jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lower CHECK (email = lower(email)),
    CONSTRAINT users_preferences_object CHECK (jsonb_typeof(preferences) = 'object')
);

CREATE TABLE refresh_tokens (
    id         uuid PRIMARY KEY,
    family_id  uuid NOT NULL,  -- the login session; the access token's sid
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       bytea NOT NULL, -- SHA-256 of the opaque token; the token itself is never stored
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    user_agent text NOT NULL DEFAULT '',
    ip         text NOT NULL DEFAULT '',
    CONSTRAINT refresh_tokens_hash_key UNIQUE (hash)
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);

GRANT SELECT, INSERT ON users TO tone_app;
GRANT UPDATE (email, password_hash, display_name, avatar_url, time_zone, preferences, updated_at) ON users TO tone_app;
GRANT SELECT, INSERT ON refresh_tokens TO tone_app;
GRANT UPDATE (used_at, revoked_at) ON refresh_tokens TO tone_app;

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE users;
