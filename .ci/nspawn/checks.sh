#!/bin/bash
# Runs inside the booted container (.ci/nspawn-test): the packaged unit under
# systemd as PID 1. Usage: checks.sh VARIANT (systemd252 | systemd239).
# /mnt/stage holds telestra-sip.rpm and plan.toml. Prints PASS/FAIL per
# check and the measured figures; exits 1 when a check failed.
# No pipefail: `journalctl | grep -q` would fail when grep stops reading early.
set -u
variant=$1
U=telestra-sipd
PLAN=/etc/telestra/sipplan.toml
npass=0 nfail=0
pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() {
	echo "FAIL $1"
	shift
	for l in "$@"; do printf '%s\n' "$l" | sed 's/^/     /'; done
	nfail=$((nfail + 1))
}
expect() { # expect NAME CONDITION DETAIL...
	local name=$1 cond=$2
	shift 2
	if eval "$cond"; then pass "$name"; else fail "$name" "$@"; fi
}
prop() { systemctl show -p "$1" --value $U; }
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
# wait_for SECONDS CONDITION: polls every 50 ms.
wait_for() {
	local end=$(($(date +%s%N) + $1 * 1000000000))
	while [ "$(date +%s%N)" -lt $end ]; do
		eval "$2" && return 0
		sleep 0.05
	done
	eval "$2"
}
# jcount REGEX [JOURNALCTL-ARGS]: how many of the unit's entries match. Checks
# compare counts before and after an action: journalctl 252 with a filter
# and --after-cursor misses entries of the service user's journal file.
jcount() { journalctl -u $U -q --no-pager "${@:2}" | grep -cE -- "$1"; }
# wait_more N REGEX [ARGS]: until more than N entries match (5 s at most).
wait_more() {
	local n=$1 re=$2 i
	shift 2
	for i in $(seq 100); do
		[ "$(jcount "$re" "$@")" -gt "$n" ] && return 0
		sleep 0.05
	done
	return 1
}
recent() { journalctl -u $U -q --no-pager -n "${1:-12}"; }
dropin() { # dropin NAME CONTENT: a runtime drop-in for one phase; "" removes it
	mkdir -p /run/systemd/system/$U.service.d
	if [ -n "$2" ]; then
		printf '[Service]\n%s\n' "$2" >/run/systemd/system/$U.service.d/$1.conf
	else
		rm -f /run/systemd/system/$U.service.d/$1.conf
	fi
	systemctl daemon-reload
}
sipctl() { timeout 20 telestra-sipctl "$@"; }

# --- install --------------------------------------------------------------
boot_t=$(date +%s)
out=$(rpm -U --nodeps /mnt/stage/telestra-sip.rpm 2>&1) && rc=0 || rc=$?
expect "rpm -U with scriptlets (sysusers, tmpfiles, preset)" '[ $rc = 0 ] && id telestra-sip >/dev/null 2>&1' "rc=$rc: $out"
install -m 0640 -o root -g telestra-sip /mnt/stage/plan.toml $PLAN
systemctl daemon-reload
out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/$U.service 2>&1)
expect "systemd-analyze verify of the installed $variant unit: no output" '[ -z "$out" ]' "$out"
warn=$(journalctl --since "@$boot_t" -q --no-pager _PID=1 | grep -F "$U.service:" || true)
expect "systemd loads the $variant unit without a warning" '[ -z "$warn" ]' "$warn"

# --- start, READY, STATUS= -------------------------------------------------
t0=$(date +%s%N)
out=$(systemctl start $U 2>&1) && rc=0 || rc=$?
start_ms=$(ms $t0)
state="$(prop ActiveState)/$(prop SubState)"
expect "systemctl start returns after READY=1 (${start_ms} ms): active/running" '[ $rc = 0 ] && [ "$state" = active/running ]' "rc=$rc $state: $out"
wait_for 5 '[ "$(prop StatusText)" = "0/1 accounts registered, 0 calls" ]'
st=$(prop StatusText)
expect "STATUS= after start: \"$st\"" '[ "$st" = "0/1 accounts registered, 0 calls" ]' "StatusText=$st"
pid=$(prop MainPID)
who=$(awk '/^Uid:/ {u = $2} /^Gid:/ {g = $2} END {print u ":" g}' /proc/"$pid"/status)
caps=$(awk '/^Cap(Inh|Prm|Eff|Bnd|Amb):/ {printf "%s%s ", $1, $2}' /proc/"$pid"/status)
expect "runs as telestra-sip ($who) with no capabilities ($caps)" \
	'[ "$who" = "$(id -u telestra-sip):$(id -g telestra-sip)" ] && [ -z "$(tr " " "\n" <<<"$caps" | grep . | grep -v ":0000000000000000$")" ]' "$who $caps"

# --- journal ---------------------------------------------------------------
wait_for 5 'journalctl -u $U -p warning -q --no-pager | grep -q "registration failed"'
# entry REGEX: the unit's first journal entry whose MESSAGE matches, all fields.
entry() { journalctl -u $U -o export --no-pager | awk -v re="$1" 'BEGIN {RS = ""} $0 ~ ("\nMESSAGE=" re) {print; exit}'; }
ready=$(entry "telestra-sipd ready")
expect "ready line: PRIORITY=6 over the native protocol (_TRANSPORT=journal), no time= in MESSAGE" \
	'grep -q "PRIORITY=6" <<<"$ready" && grep -q "_TRANSPORT=journal" <<<"$ready" && ! grep -q "MESSAGE=.*time=" <<<"$ready"' "$ready"
w=$(journalctl -u $U -p warning -q --no-pager -o verbose | grep -E 'MESSAGE=|PRIORITY=|ACCOUNT=|COMPONENT=')
expect "journalctl -p warning finds the registration failure with ACCOUNT=account-1 COMPONENT=sip PRIORITY=4" \
	'grep -q "MESSAGE=registration failed" <<<"$w" && grep -q "ACCOUNT=account-1" <<<"$w" && grep -q "COMPONENT=sip" <<<"$w" && grep -q "PRIORITY=4" <<<"$w"' "$w"
n=$(journalctl -q --no-pager ACCOUNT=account-1 | wc -l)
other=$(journalctl -q --no-pager ACCOUNT=account-1 -o verbose | grep -E '^ *ACCOUNT=' | grep -vx ' *ACCOUNT=account-1' || true)
expect "journalctl ACCOUNT=account-1 filters ($n entries, none of another account)" '[ "$n" -ge 1 ] && [ -z "$other" ]' "$other"
text=$(journalctl -u $U -q --no-pager -o verbose | grep -cE '_TRANSPORT=stdout' || true)
expect "no daemon line reaches the journal as plain stdout text" '[ "$text" = 0 ]' "$text stdout entries"

# --- reload ----------------------------------------------------------------
sed -i 's/^user = "3003"/user = "3003"\ndisplay-name = "Reloaded"/' $PLAN
n0=$(jcount "reload: plan applied")
t0=$(date +%s%N)
out=$(systemctl reload $U 2>&1) && rc=0 || rc=$?
reload_ms=$(ms $t0)
wait_more "$n0" "reload: plan applied"
expect "systemctl reload of a valid plan: exit $rc in ${reload_ms} ms, applied, same MainPID" \
	'[ $rc = 0 ] && [ "$(jcount "reload: plan applied")" = $((n0 + 1)) ] && [ "$(prop MainPID)" = "$pid" ]' "rc=$rc: $out" "$(recent)"
echo "FIGURE reload_applied_exit=$rc reload_applied_ms=$reload_ms"

cp $PLAN /run/good.toml
printf '\n[bogus-table]\nkey = 1\n' >>$PLAN
n0=$(jcount "plan rejected.*bogus-table" -p err)
t0=$(date +%s%N)
out=$(systemctl reload $U 2>&1) && rc=0 || rc=$?
rej_ms=$(ms $t0)
# journald handles the daemon's datagram on its own time: poll.
wait_more "$n0" "plan rejected.*bogus-table" -p err
n1=$(jcount "plan rejected.*bogus-table" -p err)
err=$(journalctl -u $U -p err -q --no-pager -n 5)
state="$(prop ActiveState)/$(prop SubState)"
expect "systemctl reload of an invalid plan: exit $rc (non-zero) in ${rej_ms} ms; daemon keeps running ($state)" \
	'[ $rc != 0 ] && [ "$state" = active/running ] && [ "$(prop MainPID)" = "$pid" ]' "rc=$rc: $out"
echo "FIGURE reload_rejected_exit=$rc reload_rejected_ms=$rej_ms"
expect "journalctl -p err finds the rejected reload and names the key" '[ "$n1" -gt "$n0" ]' "$err"
wait_for 3 'grep -q "last reload rejected" <<<"$(prop StatusText)"'
st=$(prop StatusText)
expect "STATUS= says the last reload was rejected" 'grep -q "last reload rejected" <<<"$st"' "$st"
names=$(sipctl status 2>&1 | grep -oE 'account-[0-9]' | sort -u | tr '\n' ' ')
expect "the old plan is kept: status lists account-1..3" '[ "$names" = "account-1 account-2 account-3 " ]' "$names"
install -m 0640 -o root -g telestra-sip /run/good.toml $PLAN
out=$(systemctl reload $U 2>&1) && rc=0 || rc=$?
wait_for 3 '! grep -q "last reload rejected" <<<"$(prop StatusText)"'
expect "reload after fixing the plan: exit 0, STATUS= clear" '[ $rc = 0 ] && ! grep -q rejected <<<"$(prop StatusText)"' "rc=$rc $(prop StatusText)"

# A frozen daemon cannot answer: the reload must fail, not report success.
dropin timeout 'TimeoutStartSec=3s'
kill -STOP "$pid"
t0=$(date +%s%N)
out=$(systemctl reload $U 2>&1) && rc=0 || rc=$?
frozen_ms=$(ms $t0)
kill -CONT "$pid"
expect "systemctl reload of a frozen daemon fails (exit $rc after ${frozen_ms} ms, TimeoutStartSec=3s)" '[ $rc != 0 ]' "$out"
echo "FIGURE reload_frozen_exit=$rc reload_frozen_ms=$frozen_ms"
dropin timeout ''
wait_for 5 '[ "$(prop ActiveState)" = active ]'
if [ "$(prop MainPID)" != "$pid" ]; then pid=$(prop MainPID); fi

# --- a call, stop with the call up ------------------------------------------
id=$(sipctl call account-2 3003 2>&1)
wait_for 5 'sipctl status --json account-3 | grep -q "\"state\":\"ringing\""'
in_id=$(sipctl status --json account-3 | grep -o '"call_id":[0-9]*' | head -1 | cut -d: -f2)
out=$(sipctl answer account-3 "$in_id" 2>&1)
wait_for 5 'sipctl status --json account-2 | grep -q "\"state\":\"active\""'
wait_for 3 '[ "$(prop StatusText)" = "0/1 accounts registered, 2 calls" ]'
st=$(prop StatusText)
expect "a call account-2 -> account-3 is up (call $id, answered $in_id); STATUS= \"$st\"" \
	'sipctl status --json account-2 | grep -q "\"state\":\"active\"" && [ "$st" = "0/1 accounts registered, 2 calls" ]' \
	"$(sipctl status 2>&1)" "$out"
n0=$(jcount "call ended")
t0=$(date +%s%N)
out=$(systemctl stop $U 2>&1) && rc=0 || rc=$?
stop_ms=$(ms $t0)
wait_more $((n0 + 1)) "call ended"
ended=$(($(jcount "call ended") - n0))
expect "systemctl stop with a call up: ${stop_ms} ms, Result=$(prop Result), both call legs ended" \
	'[ $rc = 0 ] && [ "$(prop Result)" = success ] && [ "$stop_ms" -lt 3000 ] && [ "$ended" -ge 2 ]' "rc=$rc $out" "$(recent)"
echo "FIGURE stop_with_call_ms=$stop_ms"

# --- restarts ----------------------------------------------------------------
systemctl start $U
ok=0
t0=$(date +%s%N)
for i in 1 2 3 4 5; do
	systemctl restart $U && [ "$(prop ActiveState)" = active ] && ok=$((ok + 1))
done
restart_ms=$(($(ms $t0) / 5))
expect "5 systemctl restarts in a row all succeed (${restart_ms} ms each), no start-limit" \
	'[ $ok = 5 ] && [ "$(prop ActiveState)/$(prop Result)" = active/success ]' "ok=$ok $(prop ActiveState) $(prop Result)"

# --- live exposure -------------------------------------------------------------
sec=$(systemd-analyze security $U --no-pager 2>&1 | tail -n 1)
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$sec")
expect "live exposure ($variant unit): ${level:-?}" '[ -n "$level" ] && awk -v l="$level" "BEGIN{exit !(l <= 2.5)}"' "$sec"
echo "FIGURE exposure_live=$level"

# --- watchdog -------------------------------------------------------------------
# reset-failed flushes the start counter: the phases above started the unit
# 8 times, a test artefact rather than a crash loop.
systemctl reset-failed $U
dropin watchdog $'WatchdogSec=2s\nRestartSec=1s'
systemctl restart $U
pid=$(prop MainPID)
n0=$(prop NRestarts)
w0=$(jcount "Watchdog timeout")
kill -STOP "$pid"
t0=$(date +%s%N)
wait_for 12 '[ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != "$pid" ] && [ "$(prop MainPID)" != 0 ]'
wd_ms=$(ms $t0)
wait_more "$w0" "Watchdog timeout"
expect "watchdog: a frozen daemon is killed and restarted (${wd_ms} ms with WatchdogSec=2s RestartSec=1s)" \
	'[ "$(prop MainPID)" != "$pid" ] && [ "$(prop NRestarts)" -gt "$n0" ] && [ "$(jcount "Watchdog timeout")" -gt "$w0" ]' \
	"$(recent)"
dropin watchdog ''

# --- crash loop ends in the start limit -------------------------------------------
# Another daemon holds the SIP port: every start fails ("address in use").
systemctl stop $U
systemctl reset-failed $U
sed 's/^port = 3550/port = 3551/' /run/good.toml >/run/holder.toml
telestra-sipd -plan /run/holder.toml >/run/holder.log 2>&1 &
holder=$!
wait_for 5 'grep -q "telestra-sipd ready" /run/holder.log'
dropin fast $'RestartSec=200ms'
s0=$(jcount "Main process exited, code=exited, status=1/FAILURE")
r0=$(jcount "SIP listener on 127.0.0.1:5070.*address already in use")
q0=$(jcount "Start request repeated too quickly")
systemctl start $U >/dev/null 2>&1
wait_for 20 '[ "$(prop ActiveState)" = failed ] && [ "$(jcount "Start request repeated too quickly")" -gt "$q0" ]'
loop="ActiveState=$(prop ActiveState) Result=$(prop Result) NRestarts=$(prop NRestarts)"
starts=$(($(jcount "Main process exited, code=exited, status=1/FAILURE") - s0))
wait_more "$r0" "SIP listener on 127.0.0.1:5070.*address already in use"
reason=$(($(jcount "SIP listener on 127.0.0.1:5070.*address already in use") - r0))
expect "a crash loop stops after StartLimitBurst=10 starts: $loop, $starts failed starts (the reason logged), \"Start request repeated too quickly\"" \
	'[ "$(prop ActiveState)" = failed ] && [ "$starts" = 10 ] && [ "$reason" -ge 1 ] && [ "$(jcount "Start request repeated too quickly")" -gt "$q0" ]' "$(recent)"
echo "FIGURE crash_loop=\"$loop\""
kill "$holder"
wait "$holder" 2>/dev/null
systemctl reset-failed $U
out=$(systemctl start $U 2>&1) && rc=0 || rc=$?
expect "after reset-failed the unit starts again" '[ $rc = 0 ] && [ "$(prop ActiveState)" = active ]' "$out"

# --- a bad plan is not retried ---------------------------------------------------------
printf '\n[bogus-table]\nkey = 1\n' >>$PLAN
p0=$(jcount "SIP plan invalid: /etc/telestra/sipplan.toml:[0-9]+: bogus-table" -p err)
out=$(systemctl restart $U 2>&1) && rc=0 || rc=$?
wait_more "$p0" "SIP plan invalid: /etc/telestra/sipplan.toml:[0-9]+: bogus-table" -p err
sleep 1.5 # longer than RestartSec=200ms: a retry would have happened
bad="ActiveState=$(prop ActiveState) Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus) NRestarts=$(prop NRestarts)"
p1=$(jcount "SIP plan invalid: /etc/telestra/sipplan.toml:[0-9]+: bogus-table" -p err)
err=$(journalctl -u $U -p err -q --no-pager -n 5)
expect "a restart on an invalid plan fails at once, not retried: $bad" \
	'[ $rc != 0 ] && [ "$(prop ActiveState)" = failed ] && [ "$(prop ExecMainStatus)" = 78 ] && [ "$(prop NRestarts)" = 0 ] && [ "$(prop Result)" = exit-code ]' "$out" "$bad"
echo "FIGURE bad_plan=\"$bad\""
expect "journalctl -p err shows each plan problem with its line" '[ "$p1" = $((p0 + 1)) ]' "$err"
dropin fast ''
install -m 0640 -o root -g telestra-sip /run/good.toml $PLAN

# --- secrets -----------------------------------------------------------------------------
leaks=$(journalctl -o export --no-pager | grep -ac 'pw-marker-' || true)
expect "no password in the journal (all fields of all entries)" '[ "$leaks" = 0 ]' "$leaks entries"

echo "FIGURE start_ms=$start_ms restart_ms=$restart_ms watchdog_ms=$wd_ms"
echo "checks ($variant): $npass passed, $nfail failed"
[ $nfail = 0 ]
