#!/usr/bin/env bash
# A throwaway 3-node RabbitMQ cluster on loopback for pitcher's cluster tests,
# beside (never touching) the machine's own node on 127.0.0.1:5672.
#
#   scripts/rabbitmq-cluster.sh start       install rabbitmq-server if missing,
#                                           start the 3 nodes and cluster them
#                                           (idempotent); prints the URL list
#   scripts/rabbitmq-cluster.sh stop        stop the nodes, remove their data
#   scripts/rabbitmq-cluster.sh status      each node up or down, and the cluster
#                                           as node 1 sees it; exit 0 if all up
#   scripts/rabbitmq-cluster.sh env         the exports the tests read, e.g.
#                                           eval "$(scripts/rabbitmq-cluster.sh env)"
#   scripts/rabbitmq-cluster.sh kill N      kill -9 node N's Erlang VM (tests)
#   scripts/rabbitmq-cluster.sh start-node N  start node N again (after kill),
#                                           wait until it serves
#   scripts/rabbitmq-cluster.sh pid N       node N's beam pid
#   scripts/rabbitmq-cluster.sh ctl N ARGS  rabbitmqctl -n <node N> ARGS
#
# Node N (1..3) is pitcherN@localhost, AMQP on 127.0.0.1:(5681+N) (5682-5684),
# Erlang distribution on 127.0.0.1:(25681+N), no plugins; its mnesia, logs,
# config and pid file are under $DIR/nodeN, owned by the rabbitmq user (as
# RabbitMQ insists). The nodes run as the rabbitmq user and share its Erlang
# cookie. The default guest:guest user works, from loopback only.
#
# Settings (environment):
#   PITCHER_CLUSTER_DIR  data directory (/tmp/pitcher-rabbit-cluster)
#
# Needs root (it runs the nodes as the rabbitmq user).
set -euo pipefail

DIR=${PITCHER_CLUSTER_DIR:-/tmp/pitcher-rabbit-cluster}
NODES=(1 2 3)
RMQ_BIN=/usr/lib/rabbitmq/bin
COOKIE_HOME=/var/lib/rabbitmq

die() { echo "rabbitmq-cluster: $*" >&2; exit 1; }
say() { echo "rabbitmq-cluster: $*" >&2; }

node_name() { echo "pitcher$1@localhost"; }
amqp_port() { echo $((5681 + $1)); }
dist_port() { echo $((25681 + $1)); }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

urls() {
    local hosts=()
    for n in "${NODES[@]}"; do hosts+=("127.0.0.1:$(amqp_port "$n")"); done
    local IFS=,
    echo "amqp://guest:guest@${hosts[*]}/"
}

install_rabbitmq() {
    [[ -x $RMQ_BIN/rabbitmq-server ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "rabbitmq-server is missing and installing it needs root"
    say "installing rabbitmq-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq rabbitmq-server >&2
    [[ -x $RMQ_BIN/rabbitmq-server ]] || die "rabbitmq-server installed but $RMQ_BIN/rabbitmq-server is missing"
}

# Node N's environment in NODE_ENV: its own rabbitmq-env.conf (so the
# system's /etc/rabbitmq one is never read), ports, directories, and the
# rabbitmq user's home (its Erlang cookie).
node_env() {
    local n=$1
    local d=$DIR/node$n
    NODE_ENV=(
        HOME=$COOKIE_HOME
        RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf
        RABBITMQ_NODENAME="$(node_name "$n")"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$(amqp_port "$n")"
        RABBITMQ_DIST_PORT="$(dist_port "$n")"
        RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf
        RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
        RABBITMQ_MNESIA_BASE=$d/mnesia
        RABBITMQ_LOG_BASE=$d/log
        RABBITMQ_PID_FILE=$d/pid
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        ERL_EPMD_ADDRESS=127.0.0.1
    )
}

# The command that runs the rest as the rabbitmq user, in NODE_ENV.
AS_RABBITMQ=()
if [[ $(id -u) -eq 0 ]]; then
    AS_RABBITMQ=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups)
fi

# Runs a command as the rabbitmq user with node N's environment.
as_node() {
    local n=$1
    shift
    node_env "$n"
    "${AS_RABBITMQ[@]}" env "${NODE_ENV[@]}" "$@"
}

ctl() {
    local n=$1
    shift
    (cd /tmp && as_node "$n" timeout 120 "$RMQ_BIN/rabbitmqctl" -n "$(node_name "$n")" "$@")
}

setup_node() {
    local n=$1 d=$DIR/node$n
    install -d -m 0755 "$DIR"
    install -d -o rabbitmq -g rabbitmq -m 0750 "$d" "$d/mnesia" "$d/log"
    # Empty: this file's presence keeps rabbitmq-env.conf of /etc out.
    [[ -f $d/rabbitmq-env.conf ]] || install -o rabbitmq -g rabbitmq -m 0640 /dev/null "$d/rabbitmq-env.conf"
    cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(amqp_port "$n")
loopback_users.guest = true
EOF
    echo '[].' >"$d/enabled_plugins"
    chown rabbitmq:rabbitmq "$d/rabbitmq.conf" "$d/enabled_plugins"
}

node_pid() {
    local f=$DIR/node$1/pid pid
    [[ -f $f ]] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# The shared Erlang cookie, made before any node starts so that three
# nodes starting at once do not each write their own.
ensure_cookie() {
    local c=$COOKIE_HOME/.erlang.cookie
    [[ -s $c ]] && return 0
    install -d -o rabbitmq -g rabbitmq "$COOKIE_HOME"
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Z' | head -c 20 >"$c"
    chown rabbitmq:rabbitmq "$c"
    chmod 400 "$c"
}

start_node() {
    local n=$1
    setup_node "$n"
    if ! node_pid "$n" >/dev/null; then
        node_env "$n"
        # Detached, holding none of the caller's descriptors (a caller that
        # reads this script's output would otherwise wait for the node to
        # end): the subshell closes what it inherited, then becomes the node.
        (
            cd /tmp
            for fd in /proc/$BASHPID/fd/*; do
                fd=${fd##*/}
                [[ $fd =~ ^[0-9]+$ && $fd -gt 2 ]] && eval "exec $fd>&-"
            done
            exec "${AS_RABBITMQ[@]}" env "${NODE_ENV[@]}" setsid "$RMQ_BIN/rabbitmq-server"
        ) </dev/null >>"$DIR/node$n/log/stdout.log" 2>&1 &
    fi
}

await_node() {
    local n=$1
    # `wait` follows the pid file, then the app: a node still booting is
    # waited for (await_startup fails until the VM is reachable).
    ctl "$n" wait "$DIR/node$n/pid" --timeout 110 >/dev/null 2>&1 || {
        tail -n 30 "$DIR/node$n/log/"*.log >&2 || true
        die "node $(node_name "$n") did not start (logs in $DIR/node$n/log)"
    }
}

# Node N a member of node 1's cluster, running.
join_node() {
    local n=$1 first
    first=$(node_name 1)
    if ctl "$n" cluster_status --formatter json 2>/dev/null | grep -q "\"$first\""; then
        return 0
    fi
    # Their chatter (feature-flag warnings) goes to a log of its own.
    local log=$DIR/node$n/log/join.log
    ctl "$n" stop_app >>"$log" 2>&1
    ctl "$n" reset >>"$log" 2>&1
    ctl "$n" join_cluster "$first" >>"$log" 2>&1 || { cat "$log" >&2; die "node $n could not join $first"; }
    ctl "$n" start_app >>"$log" 2>&1
}

all_up() {
    for n in "${NODES[@]}"; do
        node_pid "$n" >/dev/null && port_open "$(amqp_port "$n")" || return 1
    done
    local running
    running=$(ctl 1 cluster_status --formatter json 2>/dev/null) || return 1
    for n in "${NODES[@]}"; do
        grep -q "\"running_nodes\":\[[^]]*\"$(node_name "$n")\"" <<<"$running" || return 1
    done
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "needs root (runs the nodes as the rabbitmq user)"
    install_rabbitmq
    command -v setpriv >/dev/null || die "setpriv (util-linux) is needed"
    if all_up; then
        urls
        return 0
    fi
    ensure_cookie
    local t0=$SECONDS
    for n in "${NODES[@]}"; do start_node "$n"; done
    for n in "${NODES[@]}"; do await_node "$n"; done
    for n in "${NODES[@]:1}"; do join_node "$n"; done
    for _ in $(seq 1 60); do all_up && break; sleep 1; done
    all_up || { cmd_status >&2 || true; die "the cluster did not form"; }
    say "3 nodes up and clustered in $((SECONDS - t0)) s (data in $DIR)"
    urls
}

cmd_stop() {
    local pids=()
    for n in "${NODES[@]}"; do
        if node_pid "$n" >/dev/null; then
            ctl "$n" stop >/dev/null 2>&1 &
        fi
    done
    wait
    for n in "${NODES[@]}"; do
        local pid
        if pid=$(node_pid "$n"); then
            kill -9 "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    # Their epmd registrations go with the VMs; the system node's epmd stays.
    case $DIR in
        /tmp/*|/var/tmp/*) rm -rf "$DIR" "$DIR.lock" ;;
        *) say "data kept in $DIR (not under /tmp)" ;;
    esac
    say "stopped"
}

cmd_status() {
    local ok=0
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n") && port_open "$(amqp_port "$n")"; then
            echo "$(node_name "$n") up (pid $pid, amqp 127.0.0.1:$(amqp_port "$n"))"
        else
            echo "$(node_name "$n") down"
            ok=1
        fi
    done
    if node_pid 1 >/dev/null; then
        ctl 1 cluster_status --formatter json 2>/dev/null |
            grep -o '"running_nodes":\[[^]]*\]' || true
    fi
    all_up || ok=1
    return $ok
}

cmd_env() {
    echo "export PITCHER_RABBIT_CLUSTER='$(urls)'"
    echo "export PITCHER_RABBIT_CLUSTER_SCRIPT='$(cd "$(dirname "$0")" && pwd)/$(basename "$0")'"
    echo "export PITCHER_CLUSTER_DIR='$DIR'"
}

node_arg() {
    [[ ${1:-} =~ ^[123]$ ]] || die "expected a node number 1, 2 or 3, not '${1:-}'"
}

# Starting and killing nodes, one caller at a time (a test healing one
# node while another makes sure all are up would start it twice).
lock() {
    install -d -m 0755 "$(dirname "$DIR")"
    exec 9>"$DIR.lock"
    flock -w 300 9 || die "another rabbitmq-cluster.sh holds $DIR.lock"
}

case ${1:-} in
    start|stop|kill|start-node) lock ;;
esac

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    kill)
        node_arg "${2:-}"
        pid=$(node_pid "$2") || die "node $2 is not running"
        kill -9 "$pid"
        echo "$(node_name "$2") pid $pid killed -9"
        ;;
    start-node)
        node_arg "${2:-}"
        start_node "$2"
        await_node "$2"
        echo "$(node_name "$2") up"
        ;;
    pid)
        node_arg "${2:-}"
        node_pid "$2" || exit 1
        ;;
    ctl)
        node_arg "${2:-}"
        n=$2
        shift 2
        ctl "$n" "$@"
        ;;
    *)
        sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
