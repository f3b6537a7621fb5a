-- The catalog's record of where each UTC day's heartbeats live, when the day
-- partitions are spread over several shard databases (package daydb).
--
-- shard_databases names every database that has ever taken a day, by a
-- stable name (host:port/dbname, without user or password), so that a new
-- password or a longer HEARTLOG_POSTGRES_SHARD_URLS list changes no
-- placement. day_placements is written once per day, by the first heartbeat
-- of the day to arrive; only `heartlog shards move` changes a row.
CREATE TABLE shard_databases (
    name     text        PRIMARY KEY CHECK (name <> '' AND length(name) <= 300),
    added_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE day_placements (
    day       date        PRIMARY KEY,
    database  text        NOT NULL REFERENCES shard_databases (name),
    placed_at timestamptz NOT NULL DEFAULT now()
);

-- The placement rule counts recent days per database.
CREATE INDEX day_placements_database_day ON day_placements (database, day);
