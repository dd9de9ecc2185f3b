# Images of codex-mcp, from this repository:
#
#   docker build -t codex-mcp:0.1.0 .                        the gateway and the operator
#   docker build --target agent -t codex-mcp-agent:0.1.0 .   agents' pods: Codex CLI, git
#                                                            (with ssh, for repositories
#                                                            on ssh), ripgrep, ps and codex-mcp
#
# The chart (charts/codex-mcp, values image.* and agent.image.*) runs the
# first as uid 65532; the operator runs agent pods as uid 1000. The build
# stage's cache mounts need BuildKit (docker build's builder since Docker 23)
# or buildah; tests/cluster/build-dockerfile-images.sh builds both targets
# with buildah.

# The Codex CLI version scripts/install-codex.sh pins (tests/helm_chart.rs
# checks that they agree).
ARG CODEX_VERSION=0.169.0

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml names the benchmark target; cargo wants its file present.
COPY benches ./benches
# The crate registry and target/ are cache mounts (BuildKit's, and buildah's),
# so a rebuild after a change to src/ compiles codex-mcp alone; the binary is
# copied out of target/, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin codex-mcp \
 && strip -o /usr/local/bin/codex-mcp target/release/codex-mcp

# Agents' pods: the operator starts `codex-mcp agent-init` and the gateway
# execs `codex-mcp agent-run`, which runs `codex exec`.
FROM node:22-bookworm-slim AS agent
ARG CODEX_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client procps ripgrep \
 && rm -rf /var/lib/apt/lists/*
RUN npm install -g --no-audit --no-fund "@openai/codex@${CODEX_VERSION}" \
 && npm cache clean --force \
 && codex --version
COPY --from=build /usr/local/bin/codex-mcp /usr/local/bin/codex-mcp
# The image's `node` user; pods run as uid/gid 1000 with a read-only root
# filesystem, their volume at /agent and an emptyDir at /tmp. No WORKDIR
# under /agent: the volume mounted there would hide it before agent-init
# creates the workspace.
USER 1000:1000
CMD ["codex-mcp", "agent-init"]

# The gateway and the operator (the default target): glibc, libgcc and CA
# certificates, no shell, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /usr/local/bin/codex-mcp /usr/local/bin/codex-mcp
USER 65532:65532
EXPOSE 8210 8211
ENTRYPOINT ["codex-mcp"]
CMD ["gateway"]
