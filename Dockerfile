# The operator image: the release binary, the glibc libraries it links, a CA bundle and a passwd
# entry for 65532, on scratch. scripts/image-rootfs.sh says what the image holds; the build stage
# runs it here, and scripts/build-image.sh runs it on a binary built outside Docker and then builds
# this file's final stage with buildah (no registry needed), so what CI runs is what ships.
#   docker build -t integration-response-operator:0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p integration-response-operator --bin integration-response-operator \
 && scripts/image-rootfs.sh target/release/integration-response-operator /rootfs

FROM scratch
COPY --from=build /rootfs/ /
# 65532 is "nonroot" in the image's /etc/passwd; numeric so runAsNonRoot can be verified.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/integration-response-operator"]
