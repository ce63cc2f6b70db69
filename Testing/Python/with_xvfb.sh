#!/usr/bin/env bash
# Runs a command under its own Xvfb, then stops the server when the command ends. Usage: with_xvfb.sh command args...
# Xvfb picks a free display itself (-displayfd) and writes its number once it accepts clients: choosing the number
# here raced when ctest -j started two of these at once (both took :90; the second command then drew on the first
# one's server and lost it when that test ended: "bad X server connection").
set -u
numberFile=$(mktemp)
Xvfb -displayfd 3 -screen 0 1024x768x24 -nolisten tcp 3>"$numberFile" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$numberFile"' EXIT
display=
for _ in $(seq 1 300); do
  display=$(head -n1 "$numberFile" 2>/dev/null | tr -dc '0-9')
  [ -n "$display" ] && break
  kill -0 $server 2>/dev/null || { echo "with_xvfb: Xvfb failed to start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$display" ] || { echo "with_xvfb: Xvfb gave no display within 30 s" >&2; exit 1; }
DISPLAY=":$display" "$@"
