#!/bin/sh
# The governor demo, run inside the BPF-LSM VM by `cargo xtask demo`.
# An "agent" shell in an agent cgroup tries to wipe a production directory and is denied;
# the same command from outside the agent cgroup succeeds.
set -u
POLICY=policies/demo.toml
PROD=/tmp/governor-demo/prod
LOG=/tmp/governor-demo/daemon.log
READY=/tmp/governor-demo/ready
# The VM sees the host's root read-only: governor's config dir goes under /tmp here.
CONFIG=/tmp/governor-demo/etc-governor

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }
fail() { printf '\033[31mDEMO FAILED: %s\033[0m\n' "$*"; exit 1; }

say "Kernel $(uname -r); active LSMs: $(cat /sys/kernel/security/lsm)"

say "A production directory"
mkdir -p "$PROD/db" "$PROD/releases/v42"
echo "customer records" > "$PROD/db/customers.sqlite"
echo "orders"           > "$PROD/db/orders.sqlite"
echo "binary"           > "$PROD/releases/v42/app"
show "find $PROD -type f"; find "$PROD" -type f

say "The operator starts governor with $POLICY"
sed -n '/^\[/,$p' "$POLICY" | grep -v '^#' | grep -v '^$'
show "governor daemon --policy $POLICY &"
governor daemon --policy "$POLICY" --config-dir "$CONFIG" --ready-file "$READY" 2>"$LOG" &
DAEMON=$!
i=0; while [ ! -f "$READY" ]; do
  i=$((i+1)); [ $i -gt 600 ] && { cat "$LOG"; fail "daemon did not start"; }
  kill -0 $DAEMON 2>/dev/null || { cat "$LOG"; fail "daemon exited"; }
  sleep 0.1
done
grep -E "enforcing|agent registered" "$LOG"

say "The agent (a shell in the demo-agent cgroup) tries to wipe production"
show "governor run --agent demo-agent -- sh -c 'rm -rf $PROD'"
governor run --policy "$POLICY" --agent demo-agent -- sh -c "echo \"agent shell pid \$\$ in cgroup \$(cat /proc/self/cgroup)\"; rm -rf $PROD"
echo "(exit code $?)"
n=$(find "$PROD" -type f | wc -l)
[ "$n" -eq 3 ] || fail "expected 3 files to survive, found $n"
printf '\033[32mDENIED: all %s production files are still there.\033[0m\n' "$n"
sleep 0.3
say "What the daemon recorded (one structured event per denied operation)"
grep "governor::decision\|denied" "$LOG" | head -5

say "The live counters, from the daemon's admin socket"
show "governor status"
governor status | sed -n '/COUNTER/,/kernel events dropped/p'

say "Stopping the daemon: enforcement stays pinned in the kernel"
kill -TERM $DAEMON; wait $DAEMON
tail -1 "$LOG" | cut -c1-200
show "governor run --agent demo-agent -- rm -rf $PROD"
governor run --policy "$POLICY" --agent demo-agent -- rm -rf "$PROD" 2>&1 | tail -1
n=$(find "$PROD" -type f | wc -l)
[ "$n" -eq 3 ] || fail "expected enforcement to outlive the daemon, found $n files"
printf '\033[32mSTILL DENIED with no daemon running.\033[0m\n'
show "governor unload"
governor unload || fail "unload failed"

say "Control: the same command from outside the agent cgroup"
show "rm -rf $PROD"
rm -rf "$PROD" && [ ! -e "$PROD" ] || fail "control rm should succeed"
printf '\033[32mALLOWED: a non-agent process is unaffected; %s is gone.\033[0m\n' "$PROD"

say "Demo complete"
