package server

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/redact"
)

// The /debug/pprof/ handlers, written on runtime/pprof rather than imported from net/http/pprof: importing
// that package registers its handlers on http.DefaultServeMux, which belongs to the program that embeds the
// gateway. Only the admin mux serves these, and only with Config.Pprof. (/debug/pprof/symbol is left out:
// the profiles served here are already symbolized.)

// mountPprof adds the profiling endpoints to mux, each behind wrap (the admin token check).
func mountPprof(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	mux.Handle("/debug/pprof/", wrap(http.HandlerFunc(pprofIndex)))
	mux.Handle("/debug/pprof/cmdline", wrap(http.HandlerFunc(redactedCmdline)))
	mux.Handle("/debug/pprof/profile", wrap(http.HandlerFunc(pprofCPU)))
	mux.Handle("/debug/pprof/trace", wrap(http.HandlerFunc(pprofTrace)))
}

// pprofIndex serves /debug/pprof/<name> (a named profile; ?debug=1 for text) and, at /debug/pprof/, the list.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name != "" {
		p := pprof.Lookup(name)
		if p == nil {
			http.Error(w, "unknown profile", http.StatusNotFound)
			return
		}
		debug, _ := strconv.Atoi(r.FormValue("debug"))
		if debug > 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
		}
		_ = p.WriteTo(w, debug)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<html><head><title>/debug/pprof/</title></head><body>\n")
	for _, p := range pprof.Profiles() {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "%d <a href=\"%s?debug=1\">%s</a><br>\n", p.Count(), n, n)
	}
	b.WriteString("<a href=\"profile\">profile</a> (CPU, ?seconds=30) <a href=\"trace\">trace</a> (?seconds=1)" +
		" <a href=\"cmdline\">cmdline</a>\n</body></html>\n")
	fmt.Fprint(w, b.String())
}

// seconds reads the ?seconds= parameter; def when it is absent or not a positive number.
func seconds(r *http.Request, def float64) time.Duration {
	if s, err := strconv.ParseFloat(r.FormValue("seconds"), 64); err == nil && s > 0 {
		def = s
	}
	return time.Duration(def * float64(time.Second))
}

// pprofCPU serves a CPU profile of ?seconds= (default 30) seconds; it stops early when the client goes.
func pprofCPU(w http.ResponseWriter, r *http.Request) {
	record(w, r, "profile", 30, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// pprofTrace serves an execution trace of ?seconds= (default 1) seconds.
func pprofTrace(w http.ResponseWriter, r *http.Request) {
	record(w, r, "trace", 1, trace.Start, trace.Stop)
}

// record writes what start records into w for ?seconds= (def when absent), or until the client goes.
func record(w http.ResponseWriter, r *http.Request, name string, def float64, start func(io.Writer) error, stop func()) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	if err := start(w); err != nil {
		http.Error(w, "could not start the "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	sleepOrDone(r, seconds(r, def))
	stop()
}

// sleepOrDone waits d, or until the request is cancelled (the client left, or the admin server shuts down).
func sleepOrDone(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// redactedCmdline is the command line with credentials masked (a --redis URL may carry a password).
func redactedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(redact.Args(os.Args), "\x00"))
}
