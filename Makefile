# wsgate — `make run` tries it out, `make test` runs every test (against a real redis-server it starts itself).
GO       ?= go
PKGS     := ./...

.PHONY: run build test test-race test-attack vet redis-server haproxy browser bench bench-fleet clean

run:
	$(GO) run ./cmd/wsgate dev

build:
	$(GO) build -o bin/wsgate ./cmd/wsgate

# The tests start their own redis-server on a free port: make sure the binary is there.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing redis-server (Debian package) for the tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "make test needs redis-server on PATH: install the redis-server package (or run make test as root)"; exit 1; \
	  fi; }
	@# The Debian package starts a service on 6379 when it can; the tests never use it.

# Debian's chromium, for the admin console's browser test (make test skips that test without it; CI installs it).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (Debian package) for the console's browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the console test needs chromium on PATH: install the chromium package (or run make browser as root)"; exit 1; \
	  fi; }

# The fleet test (bench/fleet_test.go) puts HAProxy in front of the gateways; it skips, saying so, without it.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing haproxy (Debian package) for the fleet test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
	  else \
	    echo "make test skips the fleet test without haproxy: install the haproxy package (or run make test as root)"; \
	  fi; }

vet:
	$(GO) vet $(PKGS)

# Every package runs under the race detector: nearly all of them are concurrent.
test: redis-server haproxy vet
	$(GO) test -count=1 -race -parallel 4 -timeout 10m $(PKGS)

# The memory attack of issue 10 at full size (1,500 fragment holders, 300 clients that never read) against
# a gateway process; `make test` runs a small version of it.
test-attack: redis-server
	WSGATE_ATTACK=1 $(GO) test -count=1 -v -run 'TestAttack' -timeout 10m ./server/

# The load harness (see bench/RESULTS.md): several minutes on this machine. Results under bench/out.
bench: redis-server
	$(GO) test -run '^$$' -bench . -benchmem ./redisq/
	$(GO) run ./bench modes --conns 1,100,1000,10000
	$(GO) run ./bench rate --conns 1000
	$(GO) run ./bench timeouts --jobs 20000
	$(GO) run ./bench idle --conns 1000,5000,10000,19000

# Issue 13: 8 gateways on a Redis Cluster behind HAProxy (150,000 sessions, throughput, rolling deploy).
bench-fleet: redis-server haproxy
	$(GO) run ./bench fleet

clean:
	rm -rf bin
