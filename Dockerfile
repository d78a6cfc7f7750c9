# Multi-stage build: a release binary on distroless (glibc, CA certificates, no shell), non-root.
# docker build -t integration-response-operator:0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p integration-response-operator --bin integration-response-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/integration-response-operator /usr/local/bin/integration-response-operator
# 65532 is distroless's "nonroot"; numeric so runAsNonRoot can be verified.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/integration-response-operator"]
