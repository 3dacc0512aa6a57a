#!/bin/sh
# One-shot: create the four event topics with their partitions and retention (idempotent).
set -eu
BOOTSTRAP="${BOOTSTRAP:-kafka:9092}"
PARTITIONS="${PARTITIONS:-12}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"
RETENTION_MS="${RETENTION_MS:-604800000}" # 7 days: room to replay a week
KT=/opt/kafka/bin/kafka-topics.sh

for _ in $(seq 1 60); do
  "${KT}" --bootstrap-server "${BOOTSTRAP}" --list >/dev/null 2>&1 && break
  echo "waiting for ${BOOTSTRAP}"; sleep 2
done

for topic in grid.v1 inspection.v1 population.v1 notify.v1; do
  "${KT}" --bootstrap-server "${BOOTSTRAP}" --create --if-not-exists --topic "${topic}" \
    --partitions "${PARTITIONS}" --replication-factor "${REPLICATION_FACTOR}" \
    --config "retention.ms=${RETENTION_MS}" --config cleanup.policy=delete \
    --config "min.insync.replicas=$(( REPLICATION_FACTOR > 1 ? 2 : 1 ))"
done
"${KT}" --bootstrap-server "${BOOTSTRAP}" --describe --topic 'grid.v1|inspection.v1|population.v1|notify.v1' \
  | grep -E '^Topic:' || true
