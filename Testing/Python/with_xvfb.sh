#!/usr/bin/env bash
# Runs a command under its own Xvfb, then stops the server when the command ends. Usage: with_xvfb.sh command args...
# Xvfb picks a free display itself (-displayfd) and writes its number once it accepts clients: choosing the number
# here raced when two of these started at once. -noreset: by default an X server resets when its last client
# disconnects, and a connection made during that reset is refused; pvpython opens and closes a display before its
# render window does, so under load the window's XOpenDisplay could land in the reset ("bad X server connection",
# seen twice in CI dry runs on a busy 2-core machine). That one failure, and only it, is retried once.
set -u
numberFile=$(mktemp)
logFile=$(mktemp)
Xvfb -displayfd 3 -noreset -screen 0 1024x768x24 -nolisten tcp 3>"$numberFile" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$numberFile" "$logFile"' EXIT
display=
for _ in $(seq 1 300); do
  display=$(head -n1 "$numberFile" 2>/dev/null | tr -dc '0-9')
  [ -n "$display" ] && break
  kill -0 $server 2>/dev/null || { echo "with_xvfb: Xvfb failed to start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$display" ] || { echo "with_xvfb: Xvfb gave no display within 30 s" >&2; exit 1; }
for attempt in 1 2; do
  DISPLAY=":$display" "$@" 2>&1 | tee "$logFile"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] && exit 0
  grep -q "bad X server connection" "$logFile" || exit "$rc"
  kill -0 $server 2>/dev/null || { echo "with_xvfb: Xvfb on :$display has died" >&2; exit "$rc"; }
  [ "$attempt" -eq 1 ] && echo "with_xvfb: the X server refused the connection; running the command once more" >&2
done
exit "$rc"
