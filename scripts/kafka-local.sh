#!/usr/bin/env bash
# Run a real single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller, no ZooKeeper) on loopback for the integration tests.
#
# The broker jars come from Maven Central (scripts/kafka/pom.xml) and are
# cached, so only the first `up` on a machine downloads anything.
#
# Usage: scripts/kafka-local.sh {up|down|stop|start|status|env}
#
#   up      fetch jars if needed, generate a fresh throwaway CA and broker
#           certificate, format a fresh data dir (with a SCRAM user), start
#           the broker, wait until it answers, print the env exports
#   down    stop the broker (SIGTERM, then SIGKILL after ~30 s), delete its data
#   stop    stop the broker but keep its data dir (simulates an outage)
#   start   start the broker again on the existing data dir and wait for it
#   status  exit 0 if the broker is running and answering metadata requests
#   env     print the env exports
#
# Progress and errors go to stderr; only the exports go to stdout, so
#   eval "$(scripts/kafka-local.sh up)"
# works.
#
# Environment (all optional):
#   KAFKA_LOCAL_PORT             PLAINTEXT listener port        (19092)
#   KAFKA_LOCAL_SASL_PORT        SASL_PLAINTEXT/SCRAM port      (19093)
#   KAFKA_LOCAL_CONTROLLER_PORT  KRaft controller port          (19094)
#   KAFKA_LOCAL_SASL_SSL_PORT    SASL_SSL/SCRAM port            (KAFKA_LOCAL_PORT+3: 19095)
#   KAFKA_LOCAL_DIR              state dir (data, pid, logs)    (<repo>/.cache/kafka-local)
#   KAFKA_LOCAL_VERSION          Kafka version from Maven Central (4.4.0)
#   KAFKA_LOCAL_CACHE            jar cache dir                  ($HOME/.cache/kafkaevents/kafka-<version>)
#   KAFKA_LOCAL_TIMEOUT          seconds to wait for readiness  (90)
#   KAFKA_HEAP_OPTS              JVM heap flags                 (-Xms256m -Xmx512m)
#
# The SASL_SSL listener uses the same SCRAM user as SASL_PLAINTEXT and a
# certificate (SAN IP:127.0.0.1, DNS:localhost) signed by a throwaway CA that
# `up` generates with openssl into <state dir>/tls; the CA's PEM file is
# exported as KAFKA_TEST_SSL_CA_FILE. `down` deletes it with the state dir.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SCRIPT_PATH="${SCRIPT_DIR}/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd -P)"

HOST=127.0.0.1
PORT="${KAFKA_LOCAL_PORT:-19092}"
SASL_PORT="${KAFKA_LOCAL_SASL_PORT:-19093}"
CONTROLLER_PORT="${KAFKA_LOCAL_CONTROLLER_PORT:-19094}"
# Follows KAFKA_LOCAL_PORT by default, so that callers that move only the
# other three ports (tests starting a second broker next to the shared one)
# do not collide on it.
if [[ -n "${KAFKA_LOCAL_SASL_SSL_PORT:-}" ]]; then
	SASL_SSL_PORT="${KAFKA_LOCAL_SASL_SSL_PORT}"
elif [[ "${PORT}" =~ ^[0-9]+$ ]]; then
	SASL_SSL_PORT=$((PORT + 3))
else
	SASL_SSL_PORT=19095
fi
KAFKA_VERSION="${KAFKA_LOCAL_VERSION:-4.4.0}"
STATE_DIR="${KAFKA_LOCAL_DIR:-${REPO_ROOT}/.cache/kafka-local}"
if [[ -n "${KAFKA_LOCAL_CACHE:-}" ]]; then
	CACHE_DIR="${KAFKA_LOCAL_CACHE}"
elif [[ -n "${HOME:-}" ]]; then
	CACHE_DIR="${HOME}/.cache/kafkaevents/kafka-${KAFKA_VERSION}"
else
	CACHE_DIR="${REPO_ROOT}/.cache/kafka-jars/kafka-${KAFKA_VERSION}"
fi
TIMEOUT="${KAFKA_LOCAL_TIMEOUT:-90}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

SCRAM_MECHANISM=SCRAM-SHA-512
SCRAM_USER=kafkaevents
SCRAM_PASSWORD=kafkaevents-secret

POM="${SCRIPT_DIR}/kafka/pom.xml"
LIB_DIR="${CACHE_DIR}/libs"
MARKER="${CACHE_DIR}/.complete"

DATA_DIR="${STATE_DIR}/data"
PID_FILE="${STATE_DIR}/kafka.pid"
SERVER_PROPS="${STATE_DIR}/server.properties"
CLIENT_PROPS="${STATE_DIR}/client.properties"
BROKER_LOG4J="${STATE_DIR}/log4j2-broker.properties"
TOOLS_LOG4J="${STATE_DIR}/log4j2-tools.properties"
BROKER_LOG="${STATE_DIR}/server.log"     # log4j2 output of the broker
BROKER_OUT="${STATE_DIR}/broker.out"     # JVM stdout/stderr (crashes, GC, ...)
TLS_DIR="${STATE_DIR}/tls"               # throwaway CA and broker certificate
CA_CERT="${TLS_DIR}/ca.pem"
CA_KEY="${TLS_DIR}/ca.key"
BROKER_CERT="${TLS_DIR}/broker.pem"      # broker certificate, then the CA
BROKER_KEY="${TLS_DIR}/broker.key"       # unencrypted PKCS#8

log() { printf 'kafka-local: %s\n' "$*" >&2; }

die() {
	printf '\nkafka-local: ERROR: %s\n\n' "$*" >&2
	exit 1
}

# Print the end of the broker logs; used whenever something goes wrong.
dump_logs() {
	local f
	for f in "${BROKER_OUT}" "${BROKER_LOG}"; do
		if [[ -s "$f" ]]; then
			printf '\n----- last 60 lines of %s -----\n' "$f" >&2
			tail -n 60 "$f" >&2 || true
			printf -- '----- end of %s -----\n' "$f" >&2
		fi
	done
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH: $2"
}

print_env() {
	cat <<EOF
export KAFKA_BROKERS=${HOST}:${PORT}
export KAFKA_TEST_SASL_BROKERS=${HOST}:${SASL_PORT}
export KAFKA_TEST_SASL_MECHANISM=${SCRAM_MECHANISM}
export KAFKA_TEST_SASL_USERNAME=${SCRAM_USER}
export KAFKA_TEST_SASL_PASSWORD=${SCRAM_PASSWORD}
export KAFKA_TEST_SASL_SSL_BROKERS=${HOST}:${SASL_SSL_PORT}
export KAFKA_TEST_SSL_CA_FILE=$(printf '%q' "${CA_CERT}")
export KAFKA_LOCAL_SCRIPT=${SCRIPT_PATH}
EOF
}

# ---------------------------------------------------------------------------
# Jars

pom_fingerprint() {
	# Invalidate the cache when the pom or the requested version changes.
	{ cat "${POM}"; echo "kafka.version=${KAFKA_VERSION}"; } | cksum | cut -d' ' -f1
}

ensure_jars() {
	local want have=""
	want="$(pom_fingerprint)"
	[[ -f "${MARKER}" ]] && have="$(cat "${MARKER}")"
	if [[ "${have}" == "${want}" ]] && compgen -G "${LIB_DIR}/kafka_2.13-*.jar" >/dev/null; then
		return 0
	fi

	need mvn "Maven is required to fetch the Kafka jars from Maven Central"
	log "fetching Kafka ${KAFKA_VERSION} jars from Maven Central into ${CACHE_DIR}"
	mkdir -p "${CACHE_DIR}"
	local tmp="${CACHE_DIR}/libs.tmp.$$" t0=${SECONDS}
	rm -rf "${tmp}"
	local mvn_log="${CACHE_DIR}/mvn.log"
	if ! mvn -B --no-transfer-progress -Dstyle.color=never -f "${POM}" \
		-Dkafka.version="${KAFKA_VERSION}" \
		dependency:copy-dependencies -DoutputDirectory="${tmp}" >"${mvn_log}" 2>&1; then
		rm -rf "${tmp}"
		printf '\n----- last 40 lines of %s -----\n' "${mvn_log}" >&2
		tail -n 40 "${mvn_log}" >&2 || true
		die "mvn failed to fetch the Kafka ${KAFKA_VERSION} jars (see above); refusing to continue without a real broker"
	fi
	compgen -G "${tmp}/kafka_2.13-${KAFKA_VERSION}.jar" >/dev/null ||
		{ rm -rf "${tmp}"; die "mvn succeeded but kafka_2.13-${KAFKA_VERSION}.jar is missing from ${tmp}"; }
	rm -rf "${LIB_DIR}"
	mv "${tmp}" "${LIB_DIR}"
	echo "${want}" >"${MARKER}"
	log "cached $(find "${LIB_DIR}" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------
# TLS: a throwaway CA and a broker certificate for the SASL_SSL listener

need_openssl() {
	need openssl "openssl is required to generate the throwaway CA and broker certificate for the SASL_SSL listener (Debian: apt-get install openssl)"
}

gen_tls() {
	need_openssl
	log "generating a throwaway CA and broker certificate in ${TLS_DIR}"
	rm -rf "${TLS_DIR}"
	mkdir -p "${TLS_DIR}"
	chmod 700 "${TLS_DIR}"

	# The broker's names: loopback by IP and by name, and HOST whatever it is.
	local san="IP.1 = 127.0.0.1
DNS.1 = localhost"
	if [[ "${HOST}" != 127.0.0.1 && "${HOST}" != localhost ]]; then
		if [[ "${HOST}" =~ ^[0-9.]+$ || "${HOST}" == *:* ]]; then
			san+=$'\n'"IP.2 = ${HOST}"
		else
			san+=$'\n'"DNS.2 = ${HOST}"
		fi
	fi
	# Our own openssl config, so that the result does not depend on the
	# system's openssl.cnf (OpenSSL 1.1.1 and 3.x alike).
	local cnf="${TLS_DIR}/openssl.cnf"
	cat >"${cnf}" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = kafka-local throwaway CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_broker]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @alt
[alt]
${san}
EOF

	# EC P-256 keys in PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted: Kafka's
	# PEM key store reads that without ssl.key.password. The directory is
	# private to the user; the keys live only as long as the state dir.
	run_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-pkeyopt ec_param_enc:named_curve -out "${CA_KEY}"
	run_openssl req -config "${cnf}" -new -x509 -key "${CA_KEY}" \
		-extensions v3_ca -days 30 -sha256 \
		-set_serial "0x$(openssl rand -hex 16)" -out "${CA_CERT}"
	run_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-pkeyopt ec_param_enc:named_curve -out "${BROKER_KEY}"
	run_openssl req -config "${cnf}" -new -key "${BROKER_KEY}" \
		-subj "/CN=kafka-local broker" -out "${TLS_DIR}/broker.csr"
	run_openssl x509 -req -in "${TLS_DIR}/broker.csr" \
		-CA "${CA_CERT}" -CAkey "${CA_KEY}" \
		-set_serial "0x$(openssl rand -hex 16)" -days 30 -sha256 \
		-extfile "${cnf}" -extensions v3_broker -out "${TLS_DIR}/leaf.pem"
	cat "${TLS_DIR}/leaf.pem" "${CA_CERT}" >"${BROKER_CERT}"
	rm -f "${TLS_DIR}/broker.csr" "${TLS_DIR}/leaf.pem"
	chmod 600 "${CA_KEY}" "${BROKER_KEY}"
}

run_openssl() {
	local out
	if ! out="$(openssl "$@" 2>&1)"; then
		printf '%s\n' "${out}" >&2
		die "'openssl $1' failed (see above) while generating the throwaway CA and broker certificate in ${TLS_DIR}"
	fi
}

# A PEM file as the value of a .properties entry: every line but the last
# ends in "\n\", a newline escape and then a backslash that continues the
# value on the next line. The value keeps its line breaks: Kafka's PEM parser
# needs them to find more than one certificate in a chain.
pem_property() {
	sed -e '$!s/$/\\n\\/' "$1"
}

# ---------------------------------------------------------------------------
# Config files

write_configs() {
	mkdir -p "${STATE_DIR}"

	cat >"${SERVER_PROPS}" <<EOF
# Generated by scripts/kafka-local.sh; rewritten on every up/start.
# Holds the throwaway broker key (listener.name.sasl_ssl.ssl.keystore.key).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${CONTROLLER_PORT}

listeners=PLAINTEXT://${HOST}:${PORT},SASL_PLAINTEXT://${HOST}:${SASL_PORT},SASL_SSL://${HOST}:${SASL_SSL_PORT},CONTROLLER://${HOST}:${CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${PORT},SASL_PLAINTEXT://${HOST}:${SASL_PORT},SASL_SSL://${HOST}:${SASL_SSL_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT

sasl.enabled.mechanisms=${SCRAM_MECHANISM}
listener.name.sasl_plaintext.sasl.enabled.mechanisms=${SCRAM_MECHANISM}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.sasl.enabled.mechanisms=${SCRAM_MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

# SASL_SSL: the broker certificate from ${TLS_DIR}, inline as PEM (no client
# certificates, so no trust store).
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.certificate.chain=$(pem_property "${BROKER_CERT}")
listener.name.sasl_ssl.ssl.keystore.key=$(pem_property "${BROKER_KEY}")
listener.name.sasl_ssl.ssl.client.auth=none

log.dirs=${DATA_DIR}
metadata.log.dir=${DATA_DIR}

auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Keep a test broker light on 2 cores.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
	chmod 600 "${SERVER_PROPS}"

	# Settings for the admin tools used by the readiness check: fail fast
	# instead of waiting the default 60 s on a broker that is not ready.
	cat >"${CLIENT_PROPS}" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=8000
socket.connection.setup.timeout.ms=2000
socket.connection.setup.timeout.max.ms=3000
EOF

	# Kafka 4.x logs through slf4j -> log4j2. A plain .properties file needs
	# no extra jars (the distribution's YAML config would need jackson-yaml).
	cat >"${BROKER_LOG4J}" <<EOF
status = warn
name = kafka-local-broker
# Keep logging through the broker's own shutdown instead of letting log4j's
# JVM hook close the file first (every write is flushed, so nothing is lost).
shutdownHook = disable

appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${BROKER_LOG}
appender.file.filePattern = ${BROKER_LOG}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE

logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF

	cat >"${TOOLS_LOG4J}" <<EOF
status = warn
name = kafka-local-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# ---------------------------------------------------------------------------
# Process helpers

classpath() { printf '%s/*' "${LIB_DIR}"; }

run_tool() {
	# Run a Kafka CLI class with quiet logging.
	local class="$1"
	shift
	java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		-Dlog4j2.configurationFile="${TOOLS_LOG4J}" \
		-cp "$(classpath)" "${class}" "$@"
}

# The pid from the pid file, if that process is alive and is our broker.
broker_pid() {
	local pid
	[[ -f "${PID_FILE}" ]] || return 1
	pid="$(cat "${PID_FILE}" 2>/dev/null)" || return 1
	[[ "${pid}" =~ ^[0-9]+$ ]] || return 1
	kill -0 "${pid}" 2>/dev/null || return 1
	# Guard against pid reuse: the process must be java running our config.
	if [[ -r "/proc/${pid}/cmdline" ]]; then
		tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF "${SERVER_PROPS}" || return 1
	fi
	echo "${pid}"
}

port_open() {
	# Bash-only TCP probe; no Java needed.
	(exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null
}

metadata_ok() {
	# A real metadata round trip through the PLAINTEXT listener.
	timeout 30 java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		-Dlog4j2.configurationFile="${TOOLS_LOG4J}" \
		-cp "$(classpath)" org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "${HOST}:${PORT}" \
		--command-config "${CLIENT_PROPS}" --list >/dev/null 2>&1
}

# A TLS handshake with the SASL_SSL listener that verifies its certificate
# against the throwaway CA and HOST; prints openssl's output on failure.
tls_ok() {
	local verify=(-verify_hostname "${HOST}") out
	[[ "${HOST}" =~ ^[0-9.]+$ ]] && verify=(-verify_ip "${HOST}")
	if ! out="$(timeout 20 openssl s_client -connect "${HOST}:${SASL_SSL_PORT}" \
		-CAfile "${CA_CERT}" "${verify[@]}" -verify_return_error </dev/null 2>&1)"; then
		printf '%s\n' "${out}" | tail -n 20 >&2
		return 1
	fi
}

check_ports_free() {
	local p
	for p in "${PORT}" "${SASL_PORT}" "${SASL_SSL_PORT}" "${CONTROLLER_PORT}"; do
		if port_open "${p}"; then
			die "port ${HOST}:${p} is already in use by another process (a broker from another checkout? try its 'down', or set KAFKA_LOCAL_PORT/KAFKA_LOCAL_SASL_PORT/KAFKA_LOCAL_SASL_SSL_PORT/KAFKA_LOCAL_CONTROLLER_PORT)"
		fi
	done
}

launch_broker() {
	need java "a Java 17+ runtime is required to run Kafka"
	[[ -f "${DATA_DIR}/meta.properties" ]] ||
		die "no formatted data dir at ${DATA_DIR}; run '$0 up' first"
	check_ports_free

	# shellcheck disable=SC2206 # word splitting of the heap flags is intended
	local heap=(${HEAP_OPTS})
	# Remember where this run's log output starts, for wait_ready.
	LOG_OFFSET="$(stat -c %s "${BROKER_LOG}" 2>/dev/null || echo 0)"
	log "starting broker (PLAINTEXT ${HOST}:${PORT}, SASL_PLAINTEXT ${HOST}:${SASL_PORT}, SASL_SSL ${HOST}:${SASL_SSL_PORT}, CONTROLLER ${HOST}:${CONTROLLER_PORT})"
	# Run from the state dir; stdin/stdout/stderr are detached so callers
	# capturing our output (eval "$(... up)", make, CI) are not held open.
	(
		cd "${STATE_DIR}"
		exec nohup java "${heap[@]}" \
			-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
			-XX:+ExitOnOutOfMemoryError \
			-Djava.awt.headless=true \
			-Dkafka.logs.dir="${STATE_DIR}" \
			-Dlog4j2.configurationFile="${BROKER_LOG4J}" \
			-cp "$(classpath)" kafka.Kafka "${SERVER_PROPS}" \
			</dev/null >>"${BROKER_OUT}" 2>&1
	) &
	echo $! >"${PID_FILE}"
}

LOG_OFFSET=0

# Has the broker launched last logged that it finished starting?
started_logged() {
	[[ -f "${BROKER_LOG}" ]] &&
		tail -c +"$((LOG_OFFSET + 1))" "${BROKER_LOG}" 2>/dev/null | grep -q 'Kafka Server started'
}

wait_ready() {
	local started=${SECONDS} pid
	pid="$(cat "${PID_FILE}")"
	while :; do
		if ! kill -0 "${pid}" 2>/dev/null; then
			dump_logs
			rm -f "${PID_FILE}"
			die "the broker process (pid ${pid}) exited during startup"
		fi
		# Cheap checks first: the listeners accept TCP connections and the
		# broker has logged that it finished starting (or enough time has
		# passed that the log line may simply have changed); then a real
		# metadata request.
		if port_open "${PORT}" && port_open "${SASL_PORT}" && port_open "${SASL_SSL_PORT}" &&
			{ started_logged || ((SECONDS - started >= 15)); } &&
			metadata_ok; then
			if command -v openssl >/dev/null 2>&1 && ! tls_ok; then
				stop_broker || true
				die "the SASL_SSL listener ${HOST}:${SASL_SSL_PORT} answers, but its certificate does not verify against ${CA_CERT} (see above)"
			fi
			log "broker is up (pid ${pid}) after $((SECONDS - started)) s"
			return 0
		fi
		if ((SECONDS - started >= TIMEOUT)); then
			dump_logs
			stop_broker || true
			die "the broker did not answer on ${HOST}:${PORT} within ${TIMEOUT} s (logs kept in ${STATE_DIR})"
		fi
		sleep 1
	done
}

stop_broker() {
	local pid i
	if ! pid="$(broker_pid)"; then
		rm -f "${PID_FILE}"
		log "broker is not running"
		return 0
	fi
	log "stopping broker (pid ${pid})"
	kill -TERM "${pid}" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "${pid}" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "${pid}" 2>/dev/null; then
		log "broker did not stop within 30 s; sending SIGKILL"
		kill -KILL "${pid}" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "${pid}" 2>/dev/null || break
			sleep 0.1
		done
	fi
	kill -0 "${pid}" 2>/dev/null && die "could not stop broker pid ${pid}"
	rm -f "${PID_FILE}"
	log "broker stopped"
}

new_cluster_id() {
	# A random base64url UUID, as StorageTool random-uuid would print
	# (avoiding a leading '-', which CLI parsers would take for a flag).
	local id
	while :; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
		[[ "${id}" != -* ]] && { echo "${id}"; return; }
	done
}

# ---------------------------------------------------------------------------
# Commands

cmd_up() {
	need java "a Java 17+ runtime is required to run Kafka"
	need_openssl
	ensure_jars
	if broker_pid >/dev/null; then
		log "a broker from ${STATE_DIR} is already running; replacing it with a fresh one"
		stop_broker
	fi
	rm -f "${PID_FILE}"
	check_ports_free
	rm -rf "${DATA_DIR}" "${BROKER_LOG}"* "${BROKER_OUT}"
	gen_tls
	write_configs
	mkdir -p "${DATA_DIR}"

	log "formatting KRaft storage in ${DATA_DIR} (SCRAM user '${SCRAM_USER}')"
	local out
	if ! out="$(run_tool kafka.tools.StorageTool format \
		--config "${SERVER_PROPS}" \
		--cluster-id "$(new_cluster_id)" \
		--add-scram "${SCRAM_MECHANISM}=[name=${SCRAM_USER},password=${SCRAM_PASSWORD}]" 2>&1)"; then
		printf '%s\n' "${out}" >&2
		die "kafka-storage format failed"
	fi

	launch_broker
	wait_ready
	print_env
}

cmd_start() {
	local pid
	need java "a Java 17+ runtime is required to run Kafka"
	ensure_jars
	if pid="$(broker_pid)"; then
		log "broker already running (pid ${pid})"
		wait_ready
		return 0
	fi
	# A state dir from before the SASL_SSL listener has no certificate.
	[[ -s "${BROKER_CERT}" && -s "${BROKER_KEY}" ]] || gen_tls
	write_configs
	launch_broker
	wait_ready
}

cmd_down() {
	stop_broker
	rm -rf "${STATE_DIR}"
	log "removed ${STATE_DIR}"
}

cmd_status() {
	local pid
	if ! pid="$(broker_pid)"; then
		log "not running"
		return 1
	fi
	[[ -d "${LIB_DIR}" ]] || { log "running (pid ${pid}) but jar cache ${LIB_DIR} is missing"; return 1; }
	if port_open "${PORT}" && metadata_ok; then
		log "running and answering (pid ${pid})"
		return 0
	fi
	log "running (pid ${pid}) but not answering on ${HOST}:${PORT}"
	return 1
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
stop) stop_broker ;;
start) cmd_start ;;
status) cmd_status ;;
env) print_env ;;
*)
	echo "usage: $0 {up|down|stop|start|status|env}" >&2
	exit 2
	;;
esac
