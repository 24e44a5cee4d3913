-- 002_sharded_event_ids: the archive is split into the streams rrm:events:{0..N-1}, whose entry
-- ids can be equal from one shard to another, so an event id now names its shard: "<N>/<ms>-<seq>"
-- (at most 4 + 1 + 41 characters). Events of the single stream rrm:events of older versions keep
-- their bare ids, which cannot be confused with the new ones (no '/'). Only the columns widen:
-- rows already archived keep their ids. Every statement may run again safely.

ALTER TABLE rooms
    MODIFY created_event_id  VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NULL,
    MODIFY recycled_event_id VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NULL;

ALTER TABLE connections
    MODIFY event_id            VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NULL COMMENT 'connect event',
    MODIFY disconnect_event_id VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NULL;

ALTER TABLE messages
    MODIFY event_id VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL;

ALTER TABLE room_queries
    MODIFY event_id VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL;

ALTER TABLE room_events
    MODIFY event_id VARCHAR(48) CHARACTER SET ascii COLLATE ascii_bin NOT NULL;
