-- A tombstone per deleted user (`heartlog users delete`). The stream keeps
-- weeks of heartbeats and cannot be edited per user, so every sink, replay,
-- compaction, restore and rebuild drops the heartbeats and files of a
-- tombstoned user instead: the tombstone outlives the user for good.
-- object_prefix and first_day are the user's, kept so that a delete that was
-- interrupted can be run again after the users row is gone. The same
-- tombstones are mirrored into the users KV bucket (key deleted.<id>), which
-- is what processes without Postgres (ingest) see.
CREATE TABLE user_tombstones (
    user_id       uuid        PRIMARY KEY,
    object_prefix text        NOT NULL,
    first_day     date,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    -- finished_at: every store was emptied once; purged_at: the backup's
    -- versions too (--purge-backups).
    finished_at   timestamptz,
    purged_at     timestamptz
);
