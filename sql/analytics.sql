-- Analytics over the archive. Each query is preceded by a "-- name:" line; the test suite runs every
-- one of them against archived events (tests/integration/test_archiver.c).
--
-- Every query covers the period [@from, @to) in UTC; set it first, for example:
--   SET @from = '2024-11-25 10:00:00', @to = '2024-11-25 11:00:00';
-- Valid on MySQL 5.7, 8.0 and MariaDB (no window functions, no CTEs). Times are DATETIME(3) UTC.

-- name: message_throughput_per_minute
-- Messages and bytes per minute (minutes without messages are absent). Uses idx_messages_sent_at.
SELECT DATE_FORMAT(sent_at, '%Y-%m-%d %H:%i') AS minute,
       COUNT(*) AS messages,
       SUM(message_size) AS bytes
FROM messages
WHERE sent_at >= @from AND sent_at < @to
GROUP BY minute
ORDER BY minute;

-- name: message_throughput_per_room
-- Messages, bytes and senders per room, with the room's average rate over the whole period.
SELECT room_id,
       COUNT(*) AS messages,
       SUM(message_size) AS bytes,
       COUNT(DISTINCT from_device_id) AS senders,
       ROUND(COUNT(*) / (TIMESTAMPDIFF(SECOND, @from, @to) / 60), 3) AS messages_per_minute,
       MIN(sent_at) AS first_message_at,
       MAX(sent_at) AS last_message_at
FROM messages
WHERE sent_at >= @from AND sent_at < @to
GROUP BY room_id
ORDER BY messages DESC, room_id;

-- name: busiest_rooms
-- The ten rooms with the most messages, with how many devices spoke and how often the room was
-- queried.
SELECT m.room_id,
       m.messages,
       m.senders,
       COALESCE(q.queries, 0) AS queries
FROM (SELECT room_id, COUNT(*) AS messages, COUNT(DISTINCT from_device_id) AS senders
      FROM messages
      WHERE sent_at >= @from AND sent_at < @to
      GROUP BY room_id) AS m
LEFT JOIN (SELECT room_id, COUNT(*) AS queries
           FROM room_queries
           WHERE queried_at >= @from AND queried_at < @to
           GROUP BY room_id) AS q ON q.room_id = m.room_id
ORDER BY m.messages DESC, m.room_id
LIMIT 10;

-- name: device_online_rate
-- Of the devices known by the end of the period, how many were connected at some moment in it
-- (online_rate), and which share of their combined time they were connected (online_time_share).
-- A connection still open (no disconnect archived yet) counts until @to.
SELECT k.known_devices,
       COUNT(DISTINCT c.device_id) AS online_devices,
       ROUND(COUNT(DISTINCT c.device_id) / NULLIF(k.known_devices, 0), 4) AS online_rate,
       ROUND(COALESCE(SUM(TIMESTAMPDIFF(MICROSECOND,
                                        GREATEST(c.connected_at, CAST(@from AS DATETIME(3))),
                                        LEAST(COALESCE(c.disconnected_at, CAST(@to AS DATETIME(3))),
                                              CAST(@to AS DATETIME(3))))), 0) / 1000000, 3)
           AS online_seconds,
       ROUND(COALESCE(SUM(TIMESTAMPDIFF(MICROSECOND,
                                        GREATEST(c.connected_at, CAST(@from AS DATETIME(3))),
                                        LEAST(COALESCE(c.disconnected_at, CAST(@to AS DATETIME(3))),
                                              CAST(@to AS DATETIME(3))))), 0) / 1000000
             / NULLIF(k.known_devices * TIMESTAMPDIFF(SECOND, @from, @to), 0), 4)
           AS online_time_share
FROM (SELECT COUNT(*) AS known_devices FROM devices WHERE first_seen_at < @to) AS k
LEFT JOIN connections AS c
       ON c.connected_at < @to
      AND (c.disconnected_at IS NULL OR c.disconnected_at > @from)
GROUP BY k.known_devices;

-- name: device_online_time
-- Per device: connections overlapping the period and seconds connected within it.
SELECT c.device_id,
       COUNT(*) AS connections,
       ROUND(SUM(TIMESTAMPDIFF(MICROSECOND,
                               GREATEST(c.connected_at, CAST(@from AS DATETIME(3))),
                               LEAST(COALESCE(c.disconnected_at, CAST(@to AS DATETIME(3))),
                                     CAST(@to AS DATETIME(3))))) / 1000000, 3) AS online_seconds,
       ROUND(SUM(TIMESTAMPDIFF(MICROSECOND,
                               GREATEST(c.connected_at, CAST(@from AS DATETIME(3))),
                               LEAST(COALESCE(c.disconnected_at, CAST(@to AS DATETIME(3))),
                                     CAST(@to AS DATETIME(3))))) / 1000000
             / TIMESTAMPDIFF(SECOND, @from, @to), 4) AS online_share
FROM connections AS c
WHERE c.connected_at < @to
  AND (c.disconnected_at IS NULL OR c.disconnected_at > @from)
  AND c.device_id IS NOT NULL
GROUP BY c.device_id
ORDER BY online_seconds DESC, c.device_id;

-- name: connection_durations
-- Connections opened in the period and already closed: how long they lasted, in seconds.
SELECT COUNT(*) AS connections,
       ROUND(AVG(TIMESTAMPDIFF(MICROSECOND, connected_at, disconnected_at)) / 1000000, 3)
           AS avg_seconds,
       ROUND(MIN(TIMESTAMPDIFF(MICROSECOND, connected_at, disconnected_at)) / 1000000, 3)
           AS min_seconds,
       ROUND(MAX(TIMESTAMPDIFF(MICROSECOND, connected_at, disconnected_at)) / 1000000, 3)
           AS max_seconds
FROM connections
WHERE connected_at >= @from AND connected_at < @to
  AND disconnected_at IS NOT NULL;

-- name: connection_durations_per_device
-- The same per device, longest average first.
SELECT device_id,
       COUNT(*) AS connections,
       ROUND(AVG(TIMESTAMPDIFF(MICROSECOND, connected_at, disconnected_at)) / 1000000, 3)
           AS avg_seconds,
       ROUND(MAX(TIMESTAMPDIFF(MICROSECOND, connected_at, disconnected_at)) / 1000000, 3)
           AS max_seconds
FROM connections
WHERE connected_at >= @from AND connected_at < @to
  AND disconnected_at IS NOT NULL
  AND device_id IS NOT NULL
GROUP BY device_id
ORDER BY avg_seconds DESC, device_id;

-- name: connection_duration_histogram
-- How many closed connections fall in each duration band; the band holding the middle connection
-- is the median's (a percentile without window functions).
SELECT CASE
           WHEN d < 60 THEN '1: under 1 min'
           WHEN d < 300 THEN '2: 1-5 min'
           WHEN d < 1800 THEN '3: 5-30 min'
           WHEN d < 7200 THEN '4: 30 min-2 h'
           ELSE '5: 2 h or more'
       END AS duration_band,
       COUNT(*) AS connections
FROM (SELECT TIMESTAMPDIFF(MICROSECOND, connected_at, disconnected_at) / 1000000 AS d
      FROM connections
      WHERE connected_at >= @from AND connected_at < @to
        AND disconnected_at IS NOT NULL) AS durations
GROUP BY duration_band
ORDER BY duration_band;

-- name: room_query_frequency
-- query_room requests per room: how many, by how many devices, and the average room size seen.
SELECT room_id,
       COUNT(*) AS queries,
       COUNT(DISTINCT device_id) AS devices,
       ROUND(COUNT(*) / (TIMESTAMPDIFF(SECOND, @from, @to) / 3600), 3) AS queries_per_hour,
       ROUND(AVG(total_clients), 2) AS avg_total_clients
FROM room_queries
WHERE queried_at >= @from AND queried_at < @to
GROUP BY room_id
ORDER BY queries DESC, room_id;
