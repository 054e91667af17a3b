// Package extensions runs what users drop into the extensions folder, so that a new
// protocol or frame format needs no rebuild of the gateway (SPEC §7):
//
//   - a process connector: extensions/<type>/<class> is an executable in any language
//     that the gateway starts and talks to in line-delimited JSON on its stdin and
//     stdout (see docs/extensions.md for the protocol);
//   - a script converter: extensions/<type>/<Class>.star is a Starlark script that
//     defines convert(config, data), used for a converter class no built-in provides.
//
// The gateway asks ConnectorFactory for a connector type no built-in provides, and
// wraps every connector's converters with Converters.
package extensions

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/iotgw/iotgw/connector"
)

// Extensions is one extensions folder. It compiles each script once and shares it
// between the devices that use it. It is safe for concurrent use.
type Extensions struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	scripts map[string]*scriptEntry // by absolute path
}

// scriptEntry is a script compiled once, or the error of its compilation, so that a
// broken script is reported the same way to every device that uses it.
type scriptEntry struct {
	s   *Script
	err error
}

// New returns the extensions folder dir ("extensions" beside the configuration folder
// by default). The folder need not exist: then nothing is found in it.
func New(dir string, log *slog.Logger) *Extensions {
	if log == nil {
		log = slog.Default()
	}
	if abs, err := filepath.Abs(dir); err == nil {
		// A process runs in its own folder, so its path must not depend on ours.
		dir = abs
	}
	return &Extensions{dir: dir, log: log, scripts: map[string]*scriptEntry{}}
}

// Dir returns the extensions folder, absolute.
func (e *Extensions) Dir() string { return e.dir }

// validName reports whether a type or class name can be used as one path element:
// a name from a configuration file must not reach outside the extensions folder.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`+"\x00")
}

// ConnectorFactory returns a connector.Factory for a process connector if
// extensions/<type>/<class> exists: an executable file named class, or the first
// executable class.* (class.py, class.sh, ...) in name order, or a class.py that is
// not executable, which is run with python3. A file that exists but cannot be run
// still yields a factory, whose error says why, so that the user is not told that the
// connector type is unknown.
func (e *Extensions) ConnectorFactory(connectorType, class string) (connector.Factory, bool) {
	if !validName(connectorType) || !validName(class) {
		return nil, false
	}
	folder := filepath.Join(e.dir, connectorType)
	argv, found, err := findExecutable(folder, class)
	if !found {
		return nil, false
	}
	return func(gw connector.Gateway, cfg connector.Config) (connector.Connector, error) {
		if err != nil {
			return nil, err
		}
		return newProcessConnector(gw, cfg, argv, folder, e.log)
	}, true
}

// findExecutable looks for the program of class in folder. found is false when no
// file of that name exists at all.
func findExecutable(folder, class string) (argv []string, found bool, err error) {
	exact := filepath.Join(folder, class)
	if fi, statErr := os.Stat(exact); statErr == nil && fi.Mode().IsRegular() {
		found = true
		if isExecutable(fi) {
			return []string{exact}, true, nil
		}
	}
	matches, _ := filepath.Glob(filepath.Join(folder, globEscape(class)+".*"))
	sort.Strings(matches)
	var python string
	for _, m := range matches {
		ext := filepath.Ext(m)
		if ext == ".star" || ext == ".json" {
			// Converters and configuration files are never programs.
			continue
		}
		fi, statErr := os.Stat(m)
		if statErr != nil || !fi.Mode().IsRegular() {
			continue
		}
		found = true
		if isExecutable(fi) {
			return []string{m}, true, nil
		}
		if ext == ".py" && python == "" {
			python = m
		}
	}
	if python != "" {
		return []string{"python3", python}, true, nil
	}
	if found {
		return nil, true, fmt.Errorf("extension connector %s: a file exists but none is executable (chmod +x it, or name a Python program %s.py)", exact, class)
	}
	return nil, false, nil
}

func isExecutable(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o111 != 0 }

// globEscape escapes the characters filepath.Glob treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Converters wraps base (the built-ins) so that a converter class not built in is
// looked up as extensions/<connectorType>/<Class>.star. A nil base means
// connector.BuiltinConverters.
func (e *Extensions) Converters(base connector.Converters, connectorType string) connector.Converters {
	if base == nil {
		base = connector.BuiltinConverters{Logger: e.log}
	}
	return &converters{ext: e, base: base, typ: connectorType}
}

type converters struct {
	ext  *Extensions
	base connector.Converters
	typ  string
}

// Uplink implements connector.Converters: a built-in class first, then a script.
func (c *converters) Uplink(class string, deviceConfig []byte) (connector.UplinkConverter, error) {
	if _, builtin := connector.LookupUplink(class); !builtin {
		if path, ok := c.scriptPath(class); ok {
			s, err := c.ext.script(path)
			if err != nil {
				return nil, err
			}
			return s.Uplink(deviceConfig)
		}
	}
	return c.base.Uplink(class, deviceConfig)
}

// Downlink implements connector.Converters: a built-in class first, then a script.
func (c *converters) Downlink(class string, deviceConfig []byte) (connector.DownlinkConverter, error) {
	if _, builtin := connector.LookupDownlink(class); !builtin {
		if path, ok := c.scriptPath(class); ok {
			s, err := c.ext.script(path)
			if err != nil {
				return nil, err
			}
			return s.Downlink(deviceConfig)
		}
	}
	return c.base.Downlink(class, deviceConfig)
}

func (c *converters) wantPath(class string) string {
	return filepath.Join(c.ext.dir, c.typ, class+".star")
}

// scriptPath returns extensions/<type>/<class>.star if that file exists.
func (c *converters) scriptPath(class string) (string, bool) {
	if !validName(c.typ) || !validName(class) {
		return "", false
	}
	p := c.wantPath(class)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return p, true
}

// script compiles the script at path once and returns it (or its error) from then on.
func (e *Extensions) script(path string) (*Script, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if se, ok := e.scripts[path]; ok {
		return se.s, se.err
	}
	s, err := LoadScript(path, e.log)
	e.scripts[path] = &scriptEntry{s: s, err: err}
	return s, err
}
