#!/usr/bin/env bash
# Runs a command under its own Xvfb: picks a free display, waits until the server's socket exists (xvfb-run -a
# occasionally handed pvpython a display whose server was not accepting connections yet when other tests loaded
# the machine), then stops the server when the command ends. Usage: with_xvfb.sh command args...
set -u
for n in $(seq 90 140); do
  [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] || { display=$n; break; }
done
[ -n "${display:-}" ] || { echo "with_xvfb: no free display" >&2; exit 1; }
Xvfb ":$display" -screen 0 1024x768x24 -nolisten tcp >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 100); do
  [ -S "/tmp/.X11-unix/X$display" ] && break
  kill -0 $server 2>/dev/null || { echo "with_xvfb: Xvfb :$display failed to start" >&2; exit 1; }
  sleep 0.1
done
# The socket exists slightly before the server accepts clients (a fixed 0.3 s wait was not always enough on a
# loaded machine): wait until a client connection succeeds.
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.socket(socket.AF_UNIX).connect('/tmp/.X11-unix/X$display')" 2>/dev/null && break
  sleep 0.1
done
sleep 0.3
DISPLAY=":$display" "$@"
