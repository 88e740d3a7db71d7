#!/usr/bin/env bash
# Wait until a container's HEALTHCHECK reports "healthy".
# usage: wait-healthy.sh CONTAINER [TIMEOUT_SECONDS]   (default 120)
# Fails at once if the container stops or turns "unhealthy", and prints its logs.
set -euo pipefail

container="$1"
timeout="${2:-120}"
deadline=$((SECONDS + timeout))

while :; do
  running="$(docker inspect --format '{{.State.Running}}' "$container")"
  health="$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$container")"
  echo "$container: running=$running health=$health"
  case "$health" in
    healthy) exit 0 ;;
    none) echo "::error::$container has no HEALTHCHECK"; break ;;
    unhealthy) echo "::error::$container is unhealthy"; break ;;
  esac
  if [ "$running" != "true" ]; then
    echo "::error::$container stopped"
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "::error::$container not healthy after ${timeout}s"
    break
  fi
  sleep 3
done

docker inspect --format '{{json .State.Health}}' "$container" || true
docker logs "$container" 2>&1 | tail -n 100 || true
exit 1
