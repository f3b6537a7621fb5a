-- Heartbeats, range-partitioned by UTC day: one partition per day, created on
-- demand by the Postgres processor and dropped by the shard janitor once the
-- day is safe in S3 and SSDB. There is deliberately no DEFAULT partition: it
-- would block DETACH PARTITION ... CONCURRENTLY.
--
-- The primary key leads with the partition key, as Postgres requires; id is
-- the deterministic heartbeat hash, so a resent heartbeat conflicts and is
-- skipped.
CREATE TABLE heartbeats (
    day                 date             NOT NULL,
    user_id             uuid             NOT NULL,
    id                  text             NOT NULL,
    time                double precision NOT NULL,
    entity              text             NOT NULL,
    type                text             NOT NULL,
    category            text             NOT NULL,
    project             text             NOT NULL DEFAULT '',
    project_root_count  integer,
    branch              text             NOT NULL DEFAULT '',
    language            text             NOT NULL DEFAULT '',
    dependencies        text[]           NOT NULL DEFAULT '{}',
    lines               integer,
    line_additions      integer,
    line_deletions      integer,
    lineno              integer,
    cursorpos           integer,
    is_write            boolean,
    ai_line_changes     integer,
    human_line_changes  integer,
    editor              text             NOT NULL DEFAULT '',
    plugin              text             NOT NULL DEFAULT '',
    operating_system    text             NOT NULL DEFAULT '',
    machine             text             NOT NULL DEFAULT '',
    user_agent          text             NOT NULL DEFAULT '',
    extra               jsonb,
    PRIMARY KEY (day, user_id, id)
) PARTITION BY RANGE (day);

-- No secondary index: reads are per (day, user), which the primary key
-- serves, and every index slows the COPY that the projector lives on.
