# Sourced by .ci/nspawn-test: boot and stop a systemd container.
# boot ROOT STAGE LAYOUT(1: cgroup v2, 0: hybrid) LOG -> sets NSPAWN_PID, CT_PID
boot() {
	local root=$1 stage=$2 unified=$3 log=$4
	SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=$unified setsid systemd-nspawn -q -D "$root" --ephemeral --boot \
		--register=no --keep-unit --private-network --console=read-only \
		--bind-ro="$stage":/mnt/stage >"$log" 2>&1 </dev/null &
	NSPAWN_PID=$!
	CT_PID=
	local i st
	for i in $(seq 200); do
		# nspawn's first child is an intermediate process: take the one
		# that runs systemd.
		CT_PID=$(cat /proc/$NSPAWN_PID/task/*/children 2>/dev/null | awk '{print $1; exit}')
		if [ -n "$CT_PID" ] && [ "$(cat /proc/$CT_PID/comm 2>/dev/null)" = systemd ]; then
			st=$(nsenter -t "$CT_PID" -a systemctl is-system-running 2>/dev/null || true)
			case $st in running | degraded) return 0 ;; esac
		fi
		kill -0 $NSPAWN_PID 2>/dev/null || break
		sleep 0.1
	done
	echo "container did not reach running (state ${st:-none}):" >&2
	tail -n 30 "$log" >&2
	return 1
}
# ct CMD...: a command inside the booted container.
ct() { nsenter -t "$CT_PID" -a "$@"; }
# halt: SIGTERM to our nspawn (by PID), which shuts the container down in order.
halt() {
	[ -n "${NSPAWN_PID:-}" ] || return 0
	kill -TERM "$NSPAWN_PID" 2>/dev/null || true
	local i
	for i in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$NSPAWN_PID" 2>/dev/null || true
	wait "$NSPAWN_PID" 2>/dev/null || true
	NSPAWN_PID=
}
