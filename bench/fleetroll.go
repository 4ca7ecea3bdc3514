package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// The rolling-deploy clients: each is a goroutine with one connection through the load balancer and one
// request in flight (a think time between requests). They keep the books the scenario checks: every request
// sent gets exactly one answer, and a client whose connection closes is connected again within the bound.
//
// A request's send ends in exactly one of:
//   - result: the worker's answer;
//   - refused: ServiceUnavailable from a draining gateway (not forwarded); the client reconnects and resends;
//   - otherError: any other error reply (an answer too, counted by code);
//   - closedUnanswered: the gateway closed the connection (1001) with the request unanswered. The gateway
//     answers every request it took before it closes, so such a request was never taken; the client resends
//     it. The scenario reports these apart: they are requests whose answer was never sent.
//   - resetInDrain: the connection ended with no close frame at all while a gateway was draining (or within
//     a second of its exit). The gateway closes its socket right after writing the 1001 close frame; when a
//     request it never read is still in its receive buffer, the kernel answers with a reset, and the close
//     frame can be lost on the way (HAProxy drops it). Such a request was not taken either (a draining
//     gateway forwards nothing); the client resends it. Reported apart: like closedUnanswered it is a request
//     that got no answer.
//   - lost: no answer and no 1001, outside any drain (another close code, a read timeout, an error): a broken
//     promise.
// duplicate counts replies to a request already answered (or never sent on that connection).

type rollStats struct {
	sent, result, refused, closedUnanswered, resetInDrain, lost, duplicate atomic.Int64
	otherErrors                                                            sync.Map // code → *atomic.Int64
	connects, reconnects, dialFailures                                     atomic.Int64
	maxGapNs                                                               atomic.Int64 // longest time a client was without a connection
	overGap                                                                atomic.Int64 // reconnections slower than the bound
	closeCodes                                                             sync.Map     // close code → *atomic.Int64
}

func bump(m *sync.Map, k string) {
	v, _ := m.LoadOrStore(k, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func snapshot(m *sync.Map) map[string]int64 {
	out := map[string]int64{}
	m.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Int64).Load(); return true })
	return out
}

// RollOutcome is the rolling deploy's accounting.
type RollOutcome struct {
	Clients          int              `json:"clients"`
	Sent             int64            `json:"sent"`
	Results          int64            `json:"results"`
	Refused          int64            `json:"refused_service_unavailable"`
	OtherErrors      map[string]int64 `json:"other_errors"`
	ClosedUnanswered int64            `json:"closed_1001_unanswered"`
	ResetInDrain     int64            `json:"reset_in_drain_unanswered"`
	Lost             int64            `json:"lost"`
	Duplicates       int64            `json:"duplicates"`
	Unaccounted      int64            `json:"unaccounted"` // sent - every outcome: 0 when the books balance
	Connects         int64            `json:"connects"`
	Reconnects       int64            `json:"reconnects"`
	DialFailures     int64            `json:"dial_failures"`
	MaxReconnectMs   float64          `json:"max_reconnect_ms"`
	SlowReconnects   int64            `json:"reconnects_over_bound"`
	CloseCodes       map[string]int64 `json:"close_codes"`
}

func (s *rollStats) outcome(clients int) RollOutcome {
	o := RollOutcome{Clients: clients, Sent: s.sent.Load(), Results: s.result.Load(), Refused: s.refused.Load(),
		OtherErrors: snapshot(&s.otherErrors), ClosedUnanswered: s.closedUnanswered.Load(), ResetInDrain: s.resetInDrain.Load(), Lost: s.lost.Load(),
		Duplicates: s.duplicate.Load(), Connects: s.connects.Load(), Reconnects: s.reconnects.Load(),
		DialFailures: s.dialFailures.Load(), MaxReconnectMs: float64(s.maxGapNs.Load()) / 1e6,
		SlowReconnects: s.overGap.Load(), CloseCodes: snapshot(&s.closeCodes)}
	o.Unaccounted = o.Sent - o.Results - o.Refused - o.ClosedUnanswered - o.ResetInDrain - o.Lost
	for _, n := range o.OtherErrors {
		o.Unaccounted -= n
	}
	return o
}

type rollClients struct {
	url      string
	n        int
	think    time.Duration
	gapBound time.Duration
	stats    rollStats
	stop     atomic.Bool
	wg       sync.WaitGroup
	nextID   atomic.Int64
	// draining counts gateways between their SIGTERM and a second after their exit (set by the harness).
	draining atomic.Int32
}

// drainWindow marks a gateway's drain: call the function it returns once the gateway has exited.
func (r *rollClients) drainWindow() (exited func()) {
	r.draining.Add(1)
	return func() { time.AfterFunc(time.Second, func() { r.draining.Add(-1) }) }
}

// startRollClients connects n clients to url (spread over source addresses 127.0.1.x, perSrc each) and starts
// their loops. It returns once every client has connected once.
func startRollClients(url string, n, perSrc int, think, gapBound time.Duration) (*rollClients, error) {
	r := &rollClients{url: url, n: n, think: think, gapBound: gapBound}
	var connected sync.WaitGroup
	connected.Add(n)
	var firstErr atomic.Value
	for i := 0; i < n; i++ {
		src := net.IPv4(127, 0, 1+byte(i/perSrc/250), byte(1+(i/perSrc)%250))
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.client(src, &connected, &firstErr)
		}()
		if i%64 == 63 {
			time.Sleep(5 * time.Millisecond) // do not open them all in one burst
		}
	}
	done := make(chan struct{})
	go func() { connected.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		r.close()
		return nil, fmt.Errorf("rolling clients: not all %d connected after 60s (first error: %v)", n, firstErr.Load())
	}
	if e := firstErr.Load(); e != nil {
		r.close()
		return nil, fmt.Errorf("rolling clients: a client could not connect through the load balancer: %v", e)
	}
	return r, nil
}

func (r *rollClients) close() {
	r.stop.Store(true)
	r.wg.Wait()
}

// dial connects, retrying (the balancer may briefly have no gateway to offer) until the bound's double.
func (r *rollClients) dial(src net.IP) (net.Conn, error) {
	deadline := time.Now().Add(2*r.gapBound + 5*time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dialWS(ctx, r.url, src)
		cancel()
		if err == nil {
			r.stats.connects.Add(1)
			return c, nil
		}
		r.stats.dialFailures.Add(1)
		if time.Now().After(deadline) || r.stop.Load() {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rollClients) client(src net.IP, connected *sync.WaitGroup, firstErr *atomic.Value) {
	c, err := r.dial(src)
	connected.Done()
	if err != nil {
		firstErr.CompareAndSwap(nil, err.Error())
		return
	}
	var resend int64 // a request to send again (its id), 0 for none
	for !r.stop.Load() {
		id := resend
		if id == 0 {
			id = r.nextID.Add(1)
		}
		resend = 0
		outcome := r.roundTrip(c, id)
		switch outcome {
		case "result", "error":
			time.Sleep(r.think)
			continue
		case "refused":
			resend = id
		case "closed", "closed-unsent":
			resend = id
		case "lost":
		}
		// The connection is over (closed by the gateway, or refused: the gateway drains). Connect again.
		c.Close()
		lostAt := time.Now()
		if r.stop.Load() {
			return
		}
		c, err = r.dial(src)
		if err != nil {
			firstErr.CompareAndSwap(nil, err.Error())
			r.stats.overGap.Add(1)
			return
		}
		r.stats.reconnects.Add(1)
		gap := time.Since(lostAt)
		for {
			old := r.stats.maxGapNs.Load()
			if int64(gap) <= old || r.stats.maxGapNs.CompareAndSwap(old, int64(gap)) {
				break
			}
		}
		if gap > r.gapBound {
			r.stats.overGap.Add(1)
		}
	}
	c.Close()
}

var (
	errCodeKey = []byte(`"code":"`)
	reqIDPat   = []byte(`"req_id":`)
)

// roundTrip sends request id and reads until its answer: "result", "error" (another error code), "refused"
// (ServiceUnavailable), "closed" (a 1001 close with it unanswered) or "lost".
func (r *rollClients) roundTrip(c net.Conn, id int64) string {
	payload := `{"ping":1,"req_id":` + strconv.FormatInt(id, 10) + `}`
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientText(c, []byte(payload)); err != nil {
		// Not sent: the connection was already closed by the gateway. Nothing to account; resend elsewhere.
		if isClosedWrite(err) {
			return "closed-unsent"
		}
		r.stats.sent.Add(1)
		r.stats.lost.Add(1)
		return "lost"
	}
	r.stats.sent.Add(1)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		msg, err := wsutil.ReadServerText(c)
		if err != nil {
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				bump(&r.stats.closeCodes, strconv.Itoa(int(ce.Code)))
				if ce.Code == ws.StatusGoingAway {
					r.stats.closedUnanswered.Add(1)
					return "closed"
				}
			} else {
				bump(&r.stats.closeCodes, "no close frame: "+errClass(err))
				if r.draining.Load() > 0 && !isTimeout(err) {
					r.stats.resetInDrain.Add(1)
					return "closed"
				}
			}
			r.stats.lost.Add(1)
			return "lost"
		}
		i := bytes.Index(msg, reqIDPat)
		if i < 0 {
			r.stats.duplicate.Add(1) // a reply that answers nothing of ours
			continue
		}
		got, _ := strconv.ParseInt(string(digits(msg[i+len(reqIDPat):])), 10, 64)
		if got != id {
			r.stats.duplicate.Add(1)
			continue
		}
		if j := bytes.Index(msg, errCodeKey); j >= 0 && bytes.Contains(msg, []byte(`"error"`)) {
			code := string(msg[j+len(errCodeKey):])
			if k := bytes.IndexByte([]byte(code), '"'); k >= 0 {
				code = code[:k]
			}
			if code == "ServiceUnavailable" {
				r.stats.refused.Add(1)
				return "refused"
			}
			bump(&r.stats.otherErrors, code)
			return "error"
		}
		r.stats.result.Add(1)
		return "result"
	}
}

func digits(b []byte) []byte {
	k := 0
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		k++
	}
	return b[:k]
}

func isClosedWrite(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	default:
		return "eof"
	}
}
