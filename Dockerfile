# syntax=docker/dockerfile:1
# JimBus: event bus + resource coordinator. Build: docker build -t jimbus .
# Run:   docker run -p 8080:8080 -p 50051:50051 jimbus
# (add --gpus all with the NVIDIA container toolkit to let the coordinator see the GPUs).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# cgo stays on: go-nvml loads libnvidia-ml with dlopen.
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/jimbus ./cmd/jimbus

# distroless base: glibc (for cgo's dlopen), CA certificates, a nonroot user, nothing else.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/jimbus /usr/local/bin/jimbus
USER nonroot:nonroot
# In a container the bus must listen on all interfaces to be reachable.
ENV JIMBUS_HTTP_ADDR=0.0.0.0:8080 \
    JIMBUS_GRPC_ADDR=0.0.0.0:50051 \
    JIMBUS_LOG_FORMAT=json
EXPOSE 8080 50051
# No --url: healthcheck derives it from the environment (JIMBUS_HTTP_ADDR's port;
# https, unverified, on loopback when JIMBUS_TLS_CERT is set), so TLS runs pass too
# when TLS is given as JIMBUS_TLS_CERT/JIMBUS_TLS_KEY rather than as serve flags.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/jimbus", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jimbus"]
CMD ["serve"]
