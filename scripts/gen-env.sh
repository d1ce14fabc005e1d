#!/bin/sh
# Writes .env for docker compose from .env.example, every empty secret in it filled with a fresh random value.
#
#   sh scripts/gen-env.sh [path]      # default: .env beside docker-compose.yaml
#
# Settings that are not secrets keep the example's value unless the same name is set in the environment, e.g.
#   MINIO_PUBLIC_URL=https://s3.example.com RUNWAY_API_KEY=... FAL_KEY=... sh scripts/gen-env.sh
# An existing file is never overwritten: its FERNET_KEY decrypts what Airflow stored and POSTGRES_PASSWORD is
# baked into the database volume, so a new one would lock the stack out of its own data.
# Secrets are hex (the Fernet key: url-safe base64), so they are safe inside URLs, JSON and shell words.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
example="$here/.env.example"
out=${1:-"$here/.env"}

if [ -e "$out" ]; then
    echo "gen-env: $out exists; not overwriting it (move it away first to start from new secrets)" >&2
    exit 1
fi

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
fernet_key() { head -c 32 /dev/urandom | base64 | tr -d '\n' | tr '+/' '-_'; }

umask 077
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        '#'* | '') printf '%s\n' "$line"; continue ;;
    esac
    name=${line%%=*}
    value=${line#*=}
    override=$(printenv "$name" || true)
    if [ -n "$override" ]; then
        value=$override
    elif [ -z "$value" ]; then
        case "$name" in
            FERNET_KEY) value=$(fernet_key) ;;
            RUNWAY_API_KEY|FAL_KEY|OPENAI_API_KEY|ELEVENLABS_API_KEY) value= ;;  # optional: offline providers only
            *) value=$(hex 24) ;;
        esac
    fi
    printf '%s=%s\n' "$name" "$value"
done < "$example" > "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "gen-env: wrote $out (mode 600); the Airflow admin password is _AIRFLOW_WWW_USER_PASSWORD in it"
