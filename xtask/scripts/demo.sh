#!/bin/sh
# The governor demo, run inside the BPF-LSM VM by `cargo xtask demo`.
# An "agent" shell in an agent cgroup tries to wipe a production directory and is denied. It
# files a lease request; an operator approves a narrow, short lease; the agent's retry
# succeeds for exactly that, and is blocked again when the lease ends. Then the kill switch
# freezes a running agent, the lease is rolled back from the snapshot taken before it took
# effect, enforcement outlives the daemon, and the same command from outside the agent
# cgroup succeeds.
set -u
POLICY=policies/demo.toml
PROD=/tmp/governor-demo/prod
LOG=/tmp/governor-demo/daemon.log
READY=/tmp/governor-demo/ready
# The VM sees the host's root read-only: governor's config dir goes under /tmp here.
CONFIG=/tmp/governor-demo/etc-governor
KEYS=/tmp/governor-demo/operator-keys
STATE=/tmp/governor-demo/state
rm -rf "$CONFIG/trusted-keys" "$KEYS" "$STATE"
agent() { governor run --policy "$POLICY" --agent demo-agent -- "$@"; }

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }
fail() { printf '\033[31mDEMO FAILED: %s\033[0m\n' "$*"; exit 1; }

say "Kernel $(uname -r); active LSMs: $(cat /sys/kernel/security/lsm)"

say "A production directory"
mkdir -p "$PROD/db" "$PROD/releases/v41" "$PROD/releases/v42"
echo "customer records" > "$PROD/db/customers.sqlite"
echo "orders"           > "$PROD/db/orders.sqlite"
echo "old binary"       > "$PROD/releases/v41/app"
echo "old config"       > "$PROD/releases/v41/config"
echo "binary"           > "$PROD/releases/v42/app"
show "find $PROD -type f"; find "$PROD" -type f

say "The operator starts governor with $POLICY"
sed -n '/^\[/,$p' "$POLICY" | grep -v '^#' | grep -v '^$'
show "governor daemon --policy $POLICY &"
governor daemon --policy "$POLICY" --config-dir "$CONFIG" --state-dir "$STATE" --ready-file "$READY" 2>"$LOG" &
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
[ "$n" -eq 5 ] || fail "expected 5 files to survive, found $n"
printf '\033[32mDENIED: all %s production files are still there.\033[0m\n' "$n"
sleep 0.3
say "What the daemon recorded (one structured event per denied operation)"
grep "governor::decision\|denied" "$LOG" | head -3
say "Each deny shows the operator the exact command that would allow it"
grep -o "lease_hint=governor lease issue .*--reason '...'" "$LOG" | head -1

say "The agent asks for what it needs (a request grants nothing by itself)"
show "governor run --agent demo-agent -- governor request --class delete --target $PROD/releases/v41 --reason 'remove the old release v41' --ttl 8s"
agent governor request --class delete --target "$PROD/releases/v41" \
  --reason "remove the old release v41" --ttl 8s || fail "request failed"
agent rm -f "$PROD/releases/v41/app" 2>&1 | tail -1
[ -f "$PROD/releases/v41/app" ] || fail "a request alone must not allow anything"
printf '\033[32mSTILL DENIED: only an operator can authorize.\033[0m\n'

say "An operator (with an ed25519 key the daemon trusts) reviews and approves it"
show "governor key generate --operator 'Alice <alice@example.com>'"
governor key generate --operator "Alice <alice@example.com>" --secret-dir "$KEYS" \
  --trusted-dir "$CONFIG/trusted-keys" | sed -n '1,2p'
KEY=$(ls "$KEYS"/*.key)
show "governor lease pending"
governor lease pending
show "governor lease approve r-1 --key $KEY"
governor lease approve r-1 --key "$KEY" || fail "approve failed"

say "The agent retries: exactly what was approved is allowed, nothing more"
show "governor run --agent demo-agent -- rm $PROD/releases/v41/app"
agent rm "$PROD/releases/v41/app" || fail "the approved delete should succeed"
printf '\033[32mALLOWED under the lease: %s/releases/v41/app is gone.\033[0m\n' "$PROD"
show "governor run --agent demo-agent -- rm $PROD/db/orders.sqlite"
agent rm "$PROD/db/orders.sqlite" 2>&1 | tail -1
[ -f "$PROD/db/orders.sqlite" ] || fail "the lease must not cover db/"
printf '\033[32mDENIED: outside the lease scope.\033[0m\n'
grep '"message":"allowed under lease"' "$LOG" | grep -o '"lease":"[^"]*"' | head -1
show "governor lease list"
governor lease list

say "The lease ends (8 s): the kernel refuses again, on its boot-time clock"
while governor lease list | grep -q enforced; do sleep 0.5; done
sleep 0.5
show "governor run --agent demo-agent -- rm $PROD/releases/v41/config"
agent rm "$PROD/releases/v41/config" 2>&1 | tail -1
[ -f "$PROD/releases/v41/config" ] || fail "an expired lease must not allow anything"
printf '\033[32mDENIED again after expiry.\033[0m\n'

say "Undo: the daemon snapshotted the lease's scope before it took effect; the operator rolls it back"
LEASE=$(governor lease list --all --json | sed -n 's/^ *"id": *"\([^"]*\)".*$/\1/p' | head -1)
[ -n "$LEASE" ] || fail "no lease to roll back"
show "governor rollback --lease $LEASE"
governor rollback --lease "$LEASE" || fail "rollback failed"
[ "$(cat "$PROD/releases/v41/app")" = "old binary" ] || fail "the rollback must bring back releases/v41/app"
printf '\033[32mRESTORED: %s/releases/v41/app is back, byte for byte.\033[0m\n' "$PROD"

say "Kill switch: an agent keeps working in the background; the operator halts it"
agent sh -c "while :; do date +%s.%N >> /tmp/governor-demo/ticks; sleep 0.1; done" &
RUNNER=$!
sleep 1
show "governor halt --agent demo-agent --reason 'demo incident'"
governor halt --agent demo-agent --reason "demo incident" || fail "halt failed"
a=$(wc -l < /tmp/governor-demo/ticks); sleep 1; b=$(wc -l < /tmp/governor-demo/ticks)
[ "$a" -eq "$b" ] || fail "a halted agent must not run"
printf '\033[32mFROZEN: the agent made no progress for 1 s.\033[0m\n'
show "governor resume --agent demo-agent"
governor resume --agent demo-agent
governor halt --agent demo-agent --kill >/dev/null
wait $RUNNER 2>/dev/null || true
governor resume --agent demo-agent >/dev/null

say "The live counters, from the daemon's admin socket"
show "governor status"
governor status | sed -n '/COUNTER/,/kernel events dropped/p'
governor status | grep '^safety' || fail "status must report the safety figures"

say "The incident responder asks the lineage ($STATE/lineage.db)"
sleep 1  # the writer commits in batches; let the last ones land
show "governor lineage changes --db $STATE/lineage.db"
governor lineage changes --db "$STATE/lineage.db" || fail "lineage changes failed"
ID=$(governor lineage events --db "$STATE/lineage.db" --decision deny --class unlink --json \
  | sed -n 's/^.*"id": *\([0-9][0-9]*\).*$/\1/p' | head -1)
[ -n "$ID" ] || fail "the lineage holds no denied unlink"
show "governor lineage trace $ID --db $STATE/lineage.db"
governor lineage trace "$ID" --db "$STATE/lineage.db" || fail "lineage trace failed"

say "Stopping the daemon: enforcement stays pinned in the kernel"
kill -TERM $DAEMON; wait $DAEMON
tail -1 "$LOG" | cut -c1-200
show "governor run --agent demo-agent -- rm -rf $PROD"
governor run --policy "$POLICY" --agent demo-agent -- rm -rf "$PROD" 2>&1 | tail -1
n=$(find "$PROD" -type f | wc -l)
[ "$n" -eq 5 ] || fail "expected enforcement to outlive the daemon, found $n files"
printf '\033[32mSTILL DENIED with no daemon running.\033[0m\n'
show "governor unload"
governor unload || fail "unload failed"

say "Control: the same command from outside the agent cgroup"
show "rm -rf $PROD"
rm -rf "$PROD" && [ ! -e "$PROD" ] || fail "control rm should succeed"
printf '\033[32mALLOWED: a non-agent process is unaffected; %s is gone.\033[0m\n' "$PROD"

say "Demo complete"
