-- Users and their API keys. The key itself is never stored: api_key_hash is
-- SHA-256 of the normalised key (lower-case UUID without the waka_ prefix).
-- A fast hash is right here: keys are random 122-bit UUIDs, so there is no
-- dictionary to guess from, and lookups by hash stay an index probe.
CREATE TABLE users (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL CHECK (name <> '' AND length(name) <= 200),
    api_key_hash    bytea       NOT NULL UNIQUE CHECK (length(api_key_hash) = 32),
    object_prefix   text        NOT NULL CHECK (object_prefix ~ '^[a-z0-9]{4,32}$'),
    time_zone       text        NOT NULL DEFAULT 'UTC',
    timeout_minutes integer     NOT NULL DEFAULT 15 CHECK (timeout_minutes BETWEEN 1 AND 60),
    created_at      timestamptz NOT NULL DEFAULT now()
);
