# uemlink connector image: production dependencies and dist/src only, running as uid 10001.
#
#   docker build -t uemlink-connector .
#
# The config is a mounted file and the state (the paired identity) a volume. Pair once, then run:
#
#   docker run --rm \
#     -v /srv/uemlink/connector.json:/etc/uemlink/connector.json:ro \
#     -v uemlink-state:/var/lib/uemlink \
#     -v /srv/uemlink/pairing.token:/run/uemlink/pairing.token:ro \
#     uemlink-connector connector pair --config /etc/uemlink/connector.json --token-file /run/uemlink/pairing.token
#   docker run -d --name uemlink-connector --restart unless-stopped --init --stop-timeout 45 \
#     -v /srv/uemlink/connector.json:/etc/uemlink/connector.json:ro \
#     -v uemlink-state:/var/lib/uemlink -v uemlink-logs:/var/log/uemlink \
#     uemlink-connector
#
# - The mounted files must be readable by uid 10001: owned by it, the config 0640 and secret files
#   the config names (UEM passwords, API keys) 0600, e.g. next to the config. Not world-readable.
# - /var/log/uemlink (the audit log of config/connector.example.json) is a volume too: in the
#   container's own layer it went with every `docker rm` (an image upgrade).
# - --stop-timeout 45: SIGTERM drains in-flight requests (drainTimeoutSeconds, default 30); Docker's
#   default of 10 s would cut that short. Same budget as the unit's TimeoutStopSec=45.
# - --init: node is PID 1 here and does not reap processes it did not start itself.
# - --read-only works if /var/log/uemlink (the example config's audit log) is a volume or a tmpfs.
# - The audit log (audit.file, /var/log/uemlink/audit.log in the example) lives in the container
#   unless /var/log/uemlink is mounted; leave audit.file unset to keep it in the state volume.
# - There is no environment variable for the config itself: it is always the file. The environment the
#   CLI does read: UEMLINK_LOG_LEVEL (overrides logLevel), HTTPS_PROXY / HTTP_PROXY / NO_PROXY (the
#   corporate proxy, when the config has no "proxy" section), and for `connector pair` only,
#   UEMLINK_PAIRING_TOKEN instead of --token-file.
#
# No "# syntax=" line and no BuildKit-only options: it builds with any builder, offline mirrors too.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile, then drop devDependencies ----------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# better-sqlite3 (the cloud's inventory database) is a native module: it needs a compiler and
# Python to build when no prebuilt binary can be downloaded (an offline mirror). The connector never
# opens a database, but the image carries one CLI for both halves and must not ship a half-installed
# module. The toolchain stays in this stage; only the built module reaches the runtime image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# Dependencies first, so this layer is reused until package*.json change. --ignore-scripts: the
# package's own "prepare" (the build) cannot run before the sources are copied; the one dependency
# with an install script, better-sqlite3, is then built explicitly.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 --no-audit --no-fund
# `npm run build` compiles src, test and bench (tsconfig.json "include"), so all three are needed
# here; only dist/src reaches the runtime image.
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
# Prune leaves empty scope directories behind. --version imports every module: a dependency that was
# needed but pruned fails the build here, not in production; opening an in-memory database proves
# the native module loads.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -mindepth 1 -maxdepth 1 -type d -name '@*' -empty -delete \
 && node dist/src/cli/main.js --version \
 && node -e "new (require('better-sqlite3'))(':memory:').close()"

# ---- runtime ---------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# A fixed numeric uid/gid rather than the image's "node" (1000, often a real person on the host), so
# that volumes and mounted files can be prepared on the host for 10001. Same directory owners and
# modes as scripts/install.sh and the systemd unit: the config is readable, not writable, by the
# service; state and logs are its own. A system account above the usual system range: -K says so
# (else useradd warns); --no-log-init keeps a sparse lastlog from growing for a large uid.
RUN groupadd --system --gid 10001 uemlink \
 && useradd --system -K SYS_UID_MAX=10001 --uid 10001 --gid uemlink --no-log-init --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin --comment "uemlink connector" uemlink \
 && install -d -o root -g uemlink -m 0750 /etc/uemlink \
 && install -d -o uemlink -g uemlink -m 0700 /var/lib/uemlink \
 && install -d -o uemlink -g uemlink -m 0750 /var/log/uemlink

# Program files stay root's: the service cannot change its own code. package.json is read for --version.
WORKDIR /opt/uemlink
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# `docker exec CONTAINER uemlink ...` for an admin's one-off commands.
RUN ln -s /opt/uemlink/dist/src/cli/main.js /usr/local/bin/uemlink

# Declared after the directory was created with its owner and mode: a new named volume copies them.
VOLUME /var/lib/uemlink /var/log/uemlink
WORKDIR /var/lib/uemlink
USER 10001:10001

# The connector's local page, /healthz, /readyz and /metrics (config "health.listen"). It listens on
# 127.0.0.1:8081 by default, which is enough for the HEALTHCHECK below (it runs inside the
# container); publishing the port needs health.listen "0.0.0.0:8081", and beyond loopback the config
# requires health.tls (or health.allowPlainHttp). With another port or TLS, override the check with
# docker run --health-cmd.
EXPOSE 8081
# node itself: the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8081/healthz',{signal:AbortSignal.timeout(4000)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# SIGTERM drains (no new streams, in-flight requests finish), like the systemd unit's KillSignal=.
STOPSIGNAL SIGTERM
# Node flags V8 reads only at start (src/common/v8-tuning.ts NODE_FLAGS; a test keeps them equal).
ENTRYPOINT ["node", "--initial-old-space-size=128", "/opt/uemlink/dist/src/cli/main.js"]
CMD ["connector", "run", "--config", "/etc/uemlink/connector.json"]
