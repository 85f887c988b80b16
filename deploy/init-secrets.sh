#!/usr/bin/env bash
# Creates what deploy/compose.yaml needs and git ignores: deploy/.env (database passwords) and
# one Ed25519 signing key in deploy/secrets/signing-keys/. Safe to repeat: keeps what exists.
# Needs openssl. For Kubernetes, put the same into the Secret (deploy/k8s/secret.example.yaml).
set -euo pipefail
cd "$(dirname "$0")"
umask 077
if [ ! -f .env ]; then
  # Hex passwords: they go into postgresql:// URLs unescaped.
  {
    echo "POSTGRES_PASSWORD=$(openssl rand -hex 24)"
    echo "LEARNFLOW_OWNER_DB_PASSWORD=$(openssl rand -hex 24)"
    echo "LEARNFLOW_APP_DB_PASSWORD=$(openssl rand -hex 24)"
  } >.env
  echo "wrote deploy/.env"
fi
mkdir -p secrets/signing-keys
if ! ls secrets/signing-keys/*.pem >/dev/null 2>&1; then
  key="secrets/signing-keys/$(date -u +%Y%m%dT%H%M%S).pem"
  openssl genpkey -algorithm ed25519 -out "$key"
  # The containers run as uid 10001: the key must be readable by it inside the bind mount.
  # secrets/ itself stays 0700, so other users of this host cannot reach it.
  chmod 0755 secrets/signing-keys; chmod 0644 "$key"
  echo "wrote $key"
fi
