package tbmqtt

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Security types of SPEC §2 ("thingsboard.security.type").
const (
	SecurityAccessToken      = "accessToken"
	SecurityUsernamePassword = "usernamePassword"
	SecurityTLSAccessToken   = "tlsAccessToken"
	SecurityTLSPrivateKey    = "tlsPrivateKey"
)

// Security is how the client authenticates to the platform (SPEC §2).
type Security struct {
	// Type is accessToken, usernamePassword, tlsAccessToken or tlsPrivateKey; empty
	// means accessToken.
	Type string
	// AccessToken is the device token, sent as the MQTT username (accessToken,
	// tlsAccessToken).
	AccessToken string
	// ClientID, Username and Password are the MQTT credentials of usernamePassword.
	// ClientID is also honoured with the other types; empty gives a random id that
	// stays the same for the life of the process (see ProcessClientID).
	ClientID, Username, Password string
	// CACert, Cert and PrivateKey are PEM file paths. CACert is optional (system
	// roots otherwise); Cert and PrivateKey are the X.509 client certificate and key
	// (required by tlsPrivateKey, used with any TLS type when both are given).
	CACert, Cert, PrivateKey string
}

// Options configure a Client. Zero durations and sizes take the documented defaults.
type Options struct {
	// Host and Port of the broker. Port 0 means 1883, or 8883 with TLS.
	Host string
	Port int
	// TLS forces TLS. TLS is also used with a tls* security type or port 8883.
	TLS      bool
	Security Security
	// KeepAlive is the MQTT keep-alive interval (default 120 s).
	KeepAlive time.Duration
	// WriteTimeout bounds every network write (default 10 s). It is also the
	// publish-acknowledgement guard: when no acknowledgement arrives for that long
	// while publishes are outstanding, the link is closed and made again.
	WriteTimeout time.Duration
	// ConnectTimeout bounds the dial, TLS handshake and CONNACK wait (default 10 s).
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 1 s and 60 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxInflight is the most messages published but not yet acknowledged; Publish
	// waits for room beyond it (default 256, at most 65535).
	MaxInflight int
	// Logger receives the client's logs (default slog.Default()).
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultKeepAlive      = 120 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 60 * time.Second
	DefaultMaxInflight    = 256
)

// settings are validated Options plus what New derived from them.
type settings struct {
	Options
	addr     string // host:port
	clientID string
	username string
	password string
	tls      *tls.Config // nil for plain TCP
}

func newSettings(o Options) (*settings, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	sec := o.Security
	if sec.Type == "" {
		sec.Type = SecurityAccessToken
	}
	o.Security = sec
	if o.Host == "" {
		bad("host is empty")
	}
	useTLS := o.TLS || strings.HasPrefix(sec.Type, "tls") || o.Port == 8883
	if o.Port == 0 {
		o.Port = 1883
		if useTLS {
			o.Port = 8883
		}
	}
	if o.Port < 1 || o.Port > 65535 {
		bad("port %d is out of range (expected 1..65535)", o.Port)
	}
	def := func(d *time.Duration, v time.Duration, name string) {
		switch {
		case *d == 0:
			*d = v
		case *d < 0:
			bad("%s %v is negative", name, *d)
		}
	}
	def(&o.KeepAlive, DefaultKeepAlive, "keep-alive")
	def(&o.WriteTimeout, DefaultWriteTimeout, "write timeout")
	def(&o.ConnectTimeout, DefaultConnectTimeout, "connect timeout")
	def(&o.MinBackoff, DefaultMinBackoff, "minimum backoff")
	def(&o.MaxBackoff, DefaultMaxBackoff, "maximum backoff")
	if o.MaxBackoff < o.MinBackoff {
		bad("maximum backoff %v is less than minimum backoff %v", o.MaxBackoff, o.MinBackoff)
	}
	switch {
	case o.MaxInflight == 0:
		o.MaxInflight = DefaultMaxInflight
	case o.MaxInflight < 0 || o.MaxInflight > 65535:
		bad("max in-flight %d is out of range (expected 1..65535)", o.MaxInflight)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}

	s := &settings{Options: o, addr: net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), clientID: sec.ClientID}
	switch sec.Type {
	case SecurityAccessToken, SecurityTLSAccessToken:
		if sec.AccessToken == "" {
			bad("security type %s needs an accessToken", sec.Type)
		}
		s.username = sec.AccessToken
	case SecurityUsernamePassword:
		if sec.ClientID == "" && sec.Username == "" {
			bad("security type %s needs a clientId or a username", sec.Type)
		}
		s.username, s.password = sec.Username, sec.Password
	case SecurityTLSPrivateKey:
		if sec.Cert == "" || sec.PrivateKey == "" {
			bad("security type %s needs cert and privateKey", sec.Type)
		}
	default:
		bad("security type %q is unknown (expected %s, %s, %s or %s)", sec.Type,
			SecurityAccessToken, SecurityUsernamePassword, SecurityTLSAccessToken, SecurityTLSPrivateKey)
	}
	if useTLS {
		cfg, err := loadTLS(sec)
		if err != nil {
			errs = append(errs, err)
		}
		s.tls = cfg
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("tbmqtt: invalid options: %w", errors.Join(errs...))
	}
	if s.clientID == "" {
		s.clientID = ProcessClientID()
	}
	return s, nil
}

// loadTLS builds the TLS configuration from the PEM files of sec; errors name the file.
func loadTLS(sec Security) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if sec.CACert != "" {
		pem, err := os.ReadFile(sec.CACert)
		if err != nil {
			return nil, fmt.Errorf("caCert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caCert %s: no PEM certificate found", sec.CACert)
		}
		cfg.RootCAs = pool
	}
	if sec.Cert != "" || sec.PrivateKey != "" {
		if sec.Cert == "" || sec.PrivateKey == "" {
			return nil, errors.New("cert and privateKey must be given together")
		}
		for _, f := range []struct{ key, path string }{{"cert", sec.Cert}, {"privateKey", sec.PrivateKey}} {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("%s: %w", f.key, err)
			}
		}
		pair, err := tls.LoadX509KeyPair(sec.Cert, sec.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("cert %s / privateKey %s: %w", sec.Cert, sec.PrivateKey, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// ProcessClientID is the client id used when none is configured: "iotgw-" and 16
// random hex digits, drawn once per process, so that every reconnect and every new
// Client of this process presents the same id while two gateways never take each
// other's session. Two Clients of one process that talk to the same broker at the
// same time must be given their own ClientIDs.
var ProcessClientID = sync.OnceValue(func() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "iotgw-" + hex.EncodeToString(b[:])
})
