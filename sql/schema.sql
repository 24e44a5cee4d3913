-- The complete current schema, for installing by hand or reading in one place:
--   mysql websocketdata < sql/schema.sql
-- rrm-archiver does not read this file: it applies sql/migrations/NNN_*.sql (compiled into the
-- binary) and records them in schema_migrations. Keep both in step: a test compares the tables
-- this file creates with the ones the migrations create.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INT UNSIGNED NOT NULL,
    name       VARCHAR(255) NOT NULL,
    applied_at DATETIME(3)  NOT NULL,
    PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS rooms (
    room_id           VARCHAR(64)  NOT NULL,
    created_at        DATETIME(3)  NULL COMMENT 'newest creation of this room id',
    created_by_device VARCHAR(128) NULL,
    created_node      VARCHAR(128) NULL,
    created_event_id  VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NULL,
    recycled_at       DATETIME(3)  NULL COMMENT 'newest recycling; the room is gone if >= created_at',
    recycled_event_id VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NULL,
    PRIMARY KEY (room_id),
    KEY idx_rooms_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS devices (
    device_id         VARCHAR(128) NOT NULL,
    identity          VARCHAR(255) NULL COMMENT 'as given at the newest connection',
    first_seen_at     DATETIME(3)  NULL,
    last_connected_at DATETIME(3)  NULL,
    last_node         VARCHAR(128) NULL,
    last_room_id      VARCHAR(64)  NULL,
    last_room_at      DATETIME(3)  NULL,
    connect_count     INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'rows in connections',
    PRIMARY KEY (device_id),
    KEY idx_devices_last_connected_at (last_connected_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per connection (conn_id is unique cluster-wide), merged from its connect, room and
-- disconnect events in whatever order they are archived.
CREATE TABLE IF NOT EXISTS connections (
    id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    conn_id             VARCHAR(191) NOT NULL,
    event_id            VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NULL COMMENT 'connect event',
    device_id           VARCHAR(128) NULL,
    identity            VARCHAR(255) NULL,
    client_ip           VARCHAR(64)  NULL,
    node                VARCHAR(128) NULL,
    room_id             VARCHAR(64)  NULL,
    connected_at        DATETIME(3)  NULL,
    disconnected_at     DATETIME(3)  NULL,
    disconnect_reason   VARCHAR(255) NULL,
    disconnect_event_id VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_connections_conn_id (conn_id),
    UNIQUE KEY uq_connections_event_id (event_id),
    KEY idx_connections_device (device_id, connected_at),
    KEY idx_connections_connected_at (connected_at),
    KEY idx_connections_room (room_id, connected_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- message_content is the frame exactly as the client sent it: UTF-8 JSON for text and json, any
-- bytes for binary. Read text with CONVERT(message_content USING utf8mb4).
CREATE TABLE IF NOT EXISTS messages (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id        VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    room_id         VARCHAR(64)  NOT NULL,
    from_device_id  VARCHAR(128) NOT NULL,
    seq             BIGINT UNSIGNED NOT NULL COMMENT 'per-room message number',
    message_type    VARCHAR(16)  NOT NULL COMMENT 'text, json or binary',
    message_size    INT UNSIGNED NOT NULL COMMENT 'bytes',
    message_content MEDIUMBLOB   NOT NULL,
    node            VARCHAR(128) NULL,
    sent_at         DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_messages_event_id (event_id),
    KEY idx_messages_sent_at (sent_at),
    KEY idx_messages_room (room_id, sent_at),
    KEY idx_messages_from_device (from_device_id, sent_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS room_queries (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id      VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    room_id       VARCHAR(64)  NOT NULL,
    device_id     VARCHAR(128) NOT NULL,
    total_clients INT UNSIGNED NOT NULL,
    node          VARCHAR(128) NULL,
    queried_at    DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_room_queries_event_id (event_id),
    KEY idx_room_queries_queried_at (queried_at),
    KEY idx_room_queries_room (room_id, queried_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every room assignment: action is created, joined or rejoined.
CREATE TABLE IF NOT EXISTS room_events (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id    VARCHAR(48)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    room_id     VARCHAR(64)  NOT NULL,
    device_id   VARCHAR(128) NOT NULL,
    conn_id     VARCHAR(191) NULL,
    action      VARCHAR(16)  NOT NULL,
    node        VARCHAR(128) NULL,
    assigned_at DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_room_events_event_id (event_id),
    KEY idx_room_events_room (room_id, assigned_at),
    KEY idx_room_events_device (device_id, assigned_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'init', UTC_TIMESTAMP(3)),
    (2, 'sharded_event_ids', UTC_TIMESTAMP(3))
    ON DUPLICATE KEY UPDATE version = version;
