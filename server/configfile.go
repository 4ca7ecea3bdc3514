package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wsgate/wsgate/actors"
)

// File is the shape of the YAML configuration file (`wsgate serve --config FILE`). Every key is optional;
// see wsgate.example.yaml for all of them with their defaults.
type File struct {
	Listen       string   `yaml:"listen"`
	Admin        string   `yaml:"admin"`
	AdminToken   string   `yaml:"admin_token"`
	Pprof        bool     `yaml:"pprof"`
	Path         string   `yaml:"path"`
	Mode         string   `yaml:"mode"`
	Prefix       string   `yaml:"prefix"`
	QueueTimeout Duration `yaml:"queue_timeout"`
	DrainTimeout Duration `yaml:"drain_timeout"`
	// PassivateAfter: see Config.PassivateAfter.
	PassivateAfter Duration `yaml:"passivate_after"`
	// MemoryLimit is the process's soft memory limit (bytes, "auto" or "off"); the binary applies it (a
	// process-wide setting, which the library never touches).
	MemoryLimit string `yaml:"memory_limit"`
	QueueWatch  struct {
		Interval      Duration `yaml:"interval"`
		NoWorkerAfter Duration `yaml:"no_worker_after"`
		RequireWorker bool     `yaml:"require_worker"`
	} `yaml:"queue_watch"`
	Log struct {
		Format string `yaml:"format"`
		Level  string `yaml:"level"`
	} `yaml:"log"`
	Limits struct {
		MaxConnections      int          `yaml:"max_connections"`
		MaxConnectionsPerIP int          `yaml:"max_connections_per_ip"`
		MaxFrameSize        int          `yaml:"max_frame_size"`
		MaxMessageSize      int          `yaml:"max_message_size"`
		MaxResponseSize     int          `yaml:"max_response_size"`
		MaxInFlight         int          `yaml:"max_in_flight"`
		WriteQueueBytes     int          `yaml:"write_queue_bytes"`
		BufferBudget        int          `yaml:"buffer_budget"`
		MessageTimeout      Duration     `yaml:"message_timeout"`
		StreamTimeout       Duration     `yaml:"stream_timeout"`
		HandshakeTimeout    Duration     `yaml:"handshake_timeout"`
		MaxHandshakes       int          `yaml:"max_handshakes"`
		MaxHandshakesPerIP  int          `yaml:"max_handshakes_per_ip"`
		FDReserve           int          `yaml:"fd_reserve"`
		WriteTimeout        Duration     `yaml:"write_timeout"`
		LingerTimeout       Duration     `yaml:"linger_timeout"`
		RateLimit           *actors.Rate `yaml:"rate_limit"`
	} `yaml:"limits"`
	Compression        *bool    `yaml:"compression"`
	AllowedOrigins     []string `yaml:"allowed_origins"`
	CloseOnInvalidUTF8 bool     `yaml:"close_on_invalid_utf8"`
	SanityCheck        struct {
		Enabled      *bool  `yaml:"enabled"`
		ValuePattern string `yaml:"value_pattern"`
		SkipValues   string `yaml:"skip_values"`
	} `yaml:"sanity_check"`
	Queues  map[string]Queue `yaml:"queues"`
	Actions []Action         `yaml:"actions"`

	// RequireResult and ResultStash are the defaults of the actions' options of the same names.
	RequireResult bool  `yaml:"require_result"`
	ResultStash   *bool `yaml:"result_stash"`
	// Redis is a URL string or the mapping of RedisConfig.
	Redis RedisConfig `yaml:"redis"`
	// TLS serves wss:// (see ListenerTLS).
	TLS ListenerTLS `yaml:"tls"`
}

// UnmarshalYAML reads an action of the file: `- ping` as well as `- {name: ping, ...}`, with its timeout in
// seconds or as a Go duration (see Duration).
func (a *Action) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = Action{Name: n.Value}
		return nil
	}
	// The timeout is read as a Duration, the rest as the plain struct (without this method).
	rest := *n
	rest.Content = nil
	var timeout Duration
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "timeout" {
			if err := n.Content[i+1].Decode(&timeout); err != nil {
				return err
			}
			continue
		}
		rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
	}
	type plain Action
	if err := rest.Decode((*plain)(a)); err != nil {
		return err
	}
	a.Timeout = time.Duration(timeout)
	return nil
}

// Duration is a time.Duration written as a Go duration ("30s", "2m") or a number of seconds (300, 0.5), the
// unit of the Perl settings.
type Duration time.Duration

// UnmarshalYAML parses either form.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is neither seconds nor a duration such as 30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// LoadFile reads and checks a configuration file. The Config it returns holds only what the file sets (fill
// the rest with Config.WithDefaults, after environment and flags). Errors name the file, line and key.
func LoadFile(path string) (Config, File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, File{}, fmt.Errorf("config: %w", err)
	}
	return ParseFile(path, data)
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// ParseFile is LoadFile on bytes already read; name is used in errors.
func ParseFile(name string, data []byte) (Config, File, error) {
	var f File
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		if line := tabIndented(data); line > 0 {
			return Config{}, f, fmt.Errorf("%s:%d: a tab in the indentation (YAML indents with spaces only)", name, line)
		}
		return Config{}, f, fileError(name, err)
	}
	if err := checkKeys(&root, reflect.TypeFor[File](), ""); err != nil {
		return Config{}, f, fmt.Errorf("%s:%w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		return Config{}, f, fileError(name, err)
	}
	cfg, err := f.Config()
	if err != nil {
		return cfg, f, fmt.Errorf("%s: %w", name, err)
	}
	// Check the file's settings with defaults filled in, and point at the line of a bad key.
	if _, err := cfg.WithDefaults(); err != nil {
		path, _, _ := strings.Cut(err.Error(), ":")
		path, _, _ = strings.Cut(path, " (") // "redis.tls.ca (--redis-tls-ca)"
		if line := lineOf(&root, path); line > 0 {
			return cfg, f, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		return cfg, f, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, f, nil
}

// tabIndented returns the first line (from 1) whose indentation holds a tab, or 0.
func tabIndented(data []byte) int {
	for i, line := range bytes.Split(data, []byte("\n")) {
		indent := line[:len(line)-len(bytes.TrimLeft(line, " \t"))]
		if bytes.IndexByte(indent, '\t') >= 0 && len(bytes.TrimSpace(line)) > 0 {
			return i + 1
		}
	}
	return 0
}

// unknownKeyError names a key the file's schema does not have, with its line and path.
type unknownKeyError struct {
	line        int
	path, known string
}

func (e *unknownKeyError) Error() string {
	return fmt.Sprintf("%d: unknown key %q (known here: %s)", e.line, e.path, e.known)
}

// checkKeys walks the YAML tree along the Go type t (File and what it holds) and reports the first mapping key
// that no field's yaml tag names, so that errors say "unknown key limits.max_conections" and its line rather
// than a Go type. Values that t decodes itself (a scalar where t is a struct, such as `- ping` for an action)
// are left to the decoder.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" && f.IsExported() {
				tag = strings.ToLower(f.Name) // yaml.v3's default key
			}
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				return &unknownKeyError{line: k.Line, path: join(k.Value), known: strings.Join(names, ", ")}
			}
			if err := checkKeys(n.Content[i+1], ft, join(k.Value)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(n.Content[i].Value)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileError rewrites yaml's "line N: ..." into "file:N: ...".
func fileError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], yamlLine.ReplaceAllString(msg, ""))
	}
	return fmt.Errorf("%s: %s", name, msg)
}

// lineOf finds the line of a key path such as "actions[2].timeout" or "limits.rate_limit".
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		name, index := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			index, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		found := false
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
		}
		if !found {
			return line
		}
		if index >= 0 {
			if n.Kind != yaml.SequenceNode || index >= len(n.Content) {
				return line
			}
			n = n.Content[index]
			line = n.Line
		}
	}
	return line
}

// Config turns the file into a gateway Config (without defaults).
func (f *File) Config() (Config, error) {
	cfg := Config{
		Listen: f.Listen, Admin: f.Admin, RedisConfig: f.Redis, Mode: f.Mode, Prefix: f.Prefix,
		QueueTimeout: time.Duration(f.QueueTimeout), DrainTimeout: time.Duration(f.DrainTimeout),
		PassivateAfter: time.Duration(f.PassivateAfter),
		MaxInFlight:    f.Limits.MaxInFlight, MaxResponseSize: f.Limits.MaxResponseSize, RateLimit: f.Limits.RateLimit,
		CloseOnInvalidUTF8: f.CloseOnInvalidUTF8, Queues: f.Queues,
		RequireResult: f.RequireResult, ResultStash: f.ResultStash,
	}
	cfg.AdminToken, cfg.Pprof = f.AdminToken, f.Pprof
	cfg.TLS = f.TLS
	cfg.QueueWatch = QueueWatch{Interval: time.Duration(f.QueueWatch.Interval),
		NoWorkerAfter: time.Duration(f.QueueWatch.NoWorkerAfter), RequireWorker: f.QueueWatch.RequireWorker}
	cfg.Transport.Path = f.Path
	cfg.Transport.MaxConnections = f.Limits.MaxConnections
	cfg.Transport.MaxConnectionsPerIP = f.Limits.MaxConnectionsPerIP
	cfg.Transport.MaxFrameSize = f.Limits.MaxFrameSize
	cfg.Transport.MaxMessageSize = f.Limits.MaxMessageSize
	cfg.Transport.WriteQueueBytes = f.Limits.WriteQueueBytes
	cfg.Transport.BufferBudget = f.Limits.BufferBudget
	cfg.Transport.MessageTimeout = time.Duration(f.Limits.MessageTimeout)
	cfg.Transport.IdleTimeout = time.Duration(f.Limits.StreamTimeout)
	cfg.Transport.HandshakeTimeout = time.Duration(f.Limits.HandshakeTimeout)
	cfg.Transport.MaxHandshakes = f.Limits.MaxHandshakes
	cfg.Transport.MaxHandshakesPerIP = f.Limits.MaxHandshakesPerIP
	cfg.Transport.FDReserve = f.Limits.FDReserve
	cfg.Transport.WriteTimeout = time.Duration(f.Limits.WriteTimeout)
	cfg.Transport.LingerTimeout = time.Duration(f.Limits.LingerTimeout)
	cfg.Transport.AllowedOrigins = f.AllowedOrigins
	cfg.Transport.Compression = f.Compression == nil || *f.Compression
	if e := f.SanityCheck.Enabled; e != nil && !*e {
		cfg.DisableSanityCheck = true
	}
	if f.SanityCheck.ValuePattern != "" || f.SanityCheck.SkipValues != "" {
		s := actors.DefaultSanityCheck()
		var err error
		if p := f.SanityCheck.ValuePattern; p != "" {
			if s.ValuePattern, err = regexp.Compile(p); err != nil {
				return cfg, fmt.Errorf("sanity_check.value_pattern: %w", err)
			}
		}
		if p := f.SanityCheck.SkipValues; p != "" {
			if s.SkipValues, err = regexp.Compile(p); err != nil {
				return cfg, fmt.Errorf("sanity_check.skip_values: %w", err)
			}
		}
		cfg.Sanity = s
	}
	cfg.Actions = f.Actions
	return cfg, nil
}
