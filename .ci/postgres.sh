# PostgreSQL for the test suite; sourced by .ci/run (sets TEST_DATABASE_URL or exits 1).
#
PG_CONF_DIR=${PG_CONF_DIR:-/etc/postgresql}
# What this may change on the machine: only when CI=true, or when PostgreSQL is not installed
# at all, it installs Debian's postgresql package, adds trust lines for 127.0.0.1 and ::1 to
# pg_hba.conf (marked "interview-buddy-ci") and starts the cluster. Otherwise it only uses a
# PostgreSQL that is already running, and says what to do if there is none.
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
may_change_machine=false
if [ "${CI:-}" = "true" ] || ! command -v pg_isready >/dev/null 2>&1; then
  may_change_machine=true
fi
if ! command -v pg_isready >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if [ "$may_change_machine" = true ]; then
  for hba in "$PG_CONF_DIR"/*/main/pg_hba.conf; do
    [ -f "$hba" ] || continue
    if ! grep -q "interview-buddy-ci" "$hba"; then
      printf '%s\n' \
        "host all all 127.0.0.1/32 trust # interview-buddy-ci" \
        "host all all ::1/128 trust # interview-buddy-ci" | cat - "$hba" > "$hba.new"
      mv "$hba.new" "$hba"
    fi
  done
  if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls "$PG_CONF_DIR" | head -n1)" main start || true
  fi
elif ! pg_up; then
  echo "PostgreSQL is installed but not running on 127.0.0.1:5432; start it (or run with" \
    "CI=true to let this script start it and allow trust auth on 127.0.0.1)" >&2
fi
for _ in $(seq 1 "${PG_WAIT_S:-30}"); do pg_up && break; sleep 1; done
if pg_up; then
  psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null
  export TEST_DATABASE_URL="$PG_URL"
  echo "PostgreSQL is up; TEST_DATABASE_URL=$TEST_DATABASE_URL"
else
  echo "PostgreSQL is not reachable; cannot run the PostgreSQL suite" >&2
  exit 1
fi
