#!/bin/sh
# The application's Temporal namespace, created once with its retention (how long the history
# of a closed workflow is kept; docs/operations.md, "Temporal retention"). Run by the one-shot
# temporal-namespace service once the server is healthy; an existing namespace is left alone.
set -eu

NAMESPACE="${NAMESPACE:-accord}"
RETENTION="${TEMPORAL_RETENTION:-30d}"
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"

tries=0
until temporal operator cluster health --address "$ADDRESS" > /dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "Temporal at $ADDRESS is not healthy"; exit 1; }
  sleep 2
done

if temporal operator namespace describe --namespace "$NAMESPACE" --address "$ADDRESS" > /dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" --address "$ADDRESS"
fi
