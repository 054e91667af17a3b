package config

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// connectors walks the "connectors" list and reads every connector file.
func (l *loader) connectors(n *node) {
	if n == nil || n.kind == kNull {
		return // a gateway with no connectors is valid (it still reports its own stats)
	}
	if n.kind != kArray {
		l.wrongType("connectors", "a list of connectors", n)
		return
	}
	names := map[string]string{} // name → path of the entry that has it first
	ids := map[string]string{}
	for i, e := range n.vals {
		p := indexPath("connectors", i)
		if e.kind == kNull {
			l.wrongType(p, "an object with name, type and configuration", e)
			continue
		}
		var c Connector
		var inline *node
		ok := l.object(e, p, []field{
			{"name", func(n *node, p string) { l.str(n, p, &c.Name) }},
			{"type", func(n *node, p string) { l.str(n, p, &c.Type) }},
			{"configuration", func(n *node, p string) { l.str(n, p, &c.Configuration) }},
			{"configurationJson", func(n *node, p string) {
				if n.kind != kNull {
					inline = n
				}
			}},
			{"class", func(n *node, p string) { l.str(n, p, &c.Class) }},
			{"id", func(n *node, p string) { l.str(n, p, &c.ID) }},
			// Accepted and ignored: the YAML form's gRPC connector key, and the TB UI's
			// per-connector switches for gRPC and remote logging.
			{"key", nil},
			{"useGRPC", nil},
			{"enableRemoteLogging", nil},
		})
		if !ok {
			continue
		}
		switch first, dup := names[c.Name]; {
		case c.Name == "":
			l.errorf(joinPath(p, "name"), "missing (expected a connector name, got nothing)")
		case dup:
			l.errorf(joinPath(p, "name"), "duplicate connector name (expected a name not used by "+
				first+", got "+strconv.Quote(c.Name)+")")
		default:
			names[c.Name] = p
		}
		if c.Type == "" {
			l.errorf(joinPath(p, "type"), "missing (expected a connector type such as serial or mqtt, got nothing)")
		}
		if c.ID != "" {
			if first, dup := ids[c.ID]; dup {
				l.errorf(joinPath(p, "id"), "duplicate connector id (expected an id not used by "+
					first+", got "+strconv.Quote(c.ID)+")")
			} else {
				ids[c.ID] = p
			}
		} else if c.Name != "" {
			// Unique names give unique ids; a repeated name is reported above.
			c.ID = DeriveConnectorID(c.Name)
		}
		if c.Configuration != "" {
			c.Path = resolve(l.gw.Dir, c.Configuration)
		}
		switch {
		case inline != nil:
			// The TB UI (3.5+) writes the connector's configuration inline.
			ip := joinPath(p, "configurationJson")
			if inline.kind != kObject {
				l.wrongType(ip, "an object", inline)
				continue
			}
			c.Raw = appendJSON(nil, inline)
			l.connectorKeys(&c, inline, l.file, ip)
		case c.Configuration == "":
			l.errorf(joinPath(p, "configuration"), "missing (expected the connector's file name, got nothing)")
		default:
			// Named as the user reaches it from where they ran iotgw.
			display := c.Configuration
			if !filepath.IsAbs(display) {
				display = filepath.Join(filepath.Dir(l.given), display)
			}
			display = showPath(display)
			data, err := readRegular(c.Path)
			if err != nil {
				// Reported against the entry that names the file.
				l.errs = append(l.errs, &Error{File: l.file, Path: joinPath(p, "configuration"), Err: err,
					Msg: fmt.Sprintf("cannot read connector file (expected a file at %s, got %q)", showPath(c.Path), errText(err))})
				continue
			}
			tree, raw, perr := parseConnectorFile(display, data)
			if perr != nil {
				l.errs = append(l.errs, perr)
				continue
			}
			c.Raw = raw
			l.connectorKeys(&c, tree, display, "")
		}
		l.gw.Connectors = append(l.gw.Connectors, c)
	}
}

// connectorKeys takes the keys of a connector's configuration that the gateway
// itself uses: logLevel and reportStrategy. Other keys are the connector's business.
func (l *loader) connectorKeys(c *Connector, tree *node, file, path string) {
	w := &walker{file: file}
	c.LogLevel = "INFO"
	if n := tree.get("logLevel"); n != nil {
		p := joinPath(path, "logLevel")
		var s string
		w.str(n, p, &s)
		switch {
		case n.kind != kString:
		case ValidLogLevel(s):
			c.LogLevel = strings.ToUpper(strings.TrimSpace(s))
		default:
			w.errorf(p, "invalid value (expected one of "+strings.Join(logLevels, ", ")+
				", got "+strconv.Quote(s)+")")
		}
	}
	if n := tree.get("reportStrategy"); n != nil {
		p := joinPath(path, "reportStrategy")
		c.ReportStrategy = w.reportStrategy(n, p)
		w.errs = append(w.errs, validateReportStrategy(file, p, c.ReportStrategy)...)
	}
	l.errs = append(l.errs, w.errs...)
	l.warns = append(l.warns, w.warns...)
}

// errNotRegular is the cause when a configuration path names a directory or a
// device: reading /dev/zero or a FIFO would never end.
var errNotRegular = errors.New("not a regular file")

// readRegular reads a regular file.
func readRegular(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	return os.ReadFile(path)
}

// parseConnectorFile parses a connector file's content, named display in errors.
// It must be a JSON object.
func parseConnectorFile(display string, data []byte) (*node, json.RawMessage, *Error) {
	tree, perr := parseJSON(display, data)
	if perr != nil {
		return nil, nil, perr
	}
	if tree.kind != kObject {
		return nil, nil, &Error{File: display, Msg: "wrong type (expected a JSON object, got " + describe(tree) + ")"}
	}
	raw := json.RawMessage(bytes.TrimSpace(bytes.TrimPrefix(data, utf8BOM)))
	return tree, raw, nil
}

// LoadConnectorFile reads a connector configuration file and checks that it is a
// JSON object; it returns the content as written (a UTF-8 byte-order mark removed).
// Errors are *Errors naming path, with line and column for syntax errors. The
// gateway uses it to reload a connector file that changed.
func LoadConnectorFile(path string) (json.RawMessage, error) {
	data, err := readRegular(path)
	if err != nil {
		return nil, &Errors{List: []*Error{{File: showPath(path), Msg: "cannot read file: " + errText(err), Err: err}}}
	}
	_, raw, perr := parseConnectorFile(showPath(path), data)
	if perr != nil {
		return nil, &Errors{List: []*Error{perr}}
	}
	return raw, nil
}

// connectorIDSpace is the UUID namespace of derived connector ids (the RFC 4122
// URL namespace).
var connectorIDSpace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
	0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// DeriveConnectorID returns the id of a connector whose entry has none: a
// name-based (version 5) UUID of "iotgw:connector:" + name, so the same name gets
// the same id on every start and every machine.
func DeriveConnectorID(name string) string {
	h := sha1.New()
	h.Write(connectorIDSpace[:])
	h.Write([]byte("iotgw:connector:" + name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
