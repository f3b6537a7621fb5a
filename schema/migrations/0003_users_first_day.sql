-- The UTC day of a user's earliest stored heartbeat, kept by the postgres
-- processor (it only ever moves earlier), so that all_time starts where the
-- user's data does instead of guessing from created_at. NULL: no heartbeat yet.
ALTER TABLE users ADD COLUMN first_day date;
