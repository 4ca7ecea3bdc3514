# wsgate in a container: a static binary on a distroless base, running as a non-root user.
#   docker build -t wsgate .      (or: podman build -t wsgate .)
#   docker run --rm -p 8080:8080 -p 8081:8081 wsgate serve --listen 0.0.0.0:8080 --admin 0.0.0.0:8081 --redis redis://redis:6379
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wsgate ./cmd/wsgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wsgate /usr/local/bin/wsgate
COPY wsgate.example.yaml /etc/wsgate/wsgate.example.yaml
USER nonroot:nonroot
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/wsgate"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--admin", "0.0.0.0:8081"]
