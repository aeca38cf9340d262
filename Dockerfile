# Banyan's container image: `banyan serve` against real backends (the default command), or
# `banyan dev` with its embedded devstack (`docker run -p 4000:4000 IMAGE dev --listen 0.0.0.0:4000`).
#
# The build stage runs exactly the commands CI runs for it: `scripts/deploy-check/run.sh` reads
# the RUN lines of the `build` stage below and runs them in the checkout, so a change here that
# breaks the build fails CI even where no container runtime is present.

# The toolchain the repository is built and tested with (see README.md).
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The `production` profile (Cargo.toml): fat LTO, one codegen unit. Relative relocations packed
# (RELR): every process maps 1.1 MiB less of relocation table and starts 1.5-2 MiB smaller; the
# binary then needs glibc 2.36 or newer, which both stages have (Debian 12). `cargo run` and
# the release profile do not pack: a developer's glibc may be older (README, "Deployment").
RUN RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs" cargo build --profile production --locked -p banyan-gateway --bin banyan

# glibc, libgcc, CA certificates and a `nonroot` user (65532), no shell: Debian 12, as the
# build stage, so the binary's glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
WORKDIR /app
COPY --from=build /src/target/production/banyan /usr/local/bin/banyan
# The contract and its persisted-operations manifest: the admin page's report and trusted
# documents read them (`admin.contract`, `persisted.manifest`).
COPY --from=build /src/frontend-contract /app/frontend-contract
USER nonroot:nonroot
EXPOSE 4000
ENTRYPOINT ["/usr/local/bin/banyan"]
CMD ["serve", "--config", "/etc/banyan/banyan.toml"]
