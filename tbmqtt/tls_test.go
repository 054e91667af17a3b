package tbmqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki is a throw-away CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	caFile, clientCert, clientKey string
	pool                          *x509.CertPool
	server                        tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "iotgw test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	srvDER, srvKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(3, "gw-client", x509.ExtKeyUsageClientAuth, nil)

	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientKey = writePEM(t, dir, "client.key", "PRIVATE KEY", keyDER)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serverTLS is the broker's TLS configuration; requireClientCert asks for a client
// certificate signed by the CA.
func (p *pki) serverTLS(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.pool
	}
	return cfg
}

func TestTLSConnect(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name      string
		clientReq bool
		sec       Security
		wantUser  string
		wantCN    string
	}{
		{"tlsAccessToken", false, Security{Type: SecurityTLSAccessToken, AccessToken: "tok", CACert: p.caFile}, "tok", ""},
		{"tlsPrivateKey", true, Security{Type: SecurityTLSPrivateKey, CACert: p.caFile, Cert: p.clientCert, PrivateKey: p.clientKey}, "", "gw-client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, "127.0.0.1:0", newRecorder(tt.wantUser), p.serverTLS(tt.clientReq))
			o := testOptions(b, "")
			o.Security = tt.sec
			c := newClient(t, o)
			runClient(t, c)
			waitConnected(t, c, 5*time.Second)
			got := b.hook.connsSnapshot()[0]
			if got.username != tt.wantUser || got.certCN != tt.wantCN || !got.accepted {
				t.Errorf("CONNECT %+v, want username %q, client certificate %q", got, tt.wantUser, tt.wantCN)
			}
			if err := c.Publish(TopicTelemetry, 1, []byte(`{"D":[]}`)).Wait(context.Background()); err != nil {
				t.Fatalf("publish over TLS: %v", err)
			}
			if m := b.hook.pubsSnapshot(); len(m) != 1 || string(m[0].payload) != `{"D":[]}` {
				t.Errorf("broker got %+v", m)
			}
		})
	}
}

// TestTLSFailuresAreRetriedNeverPlain: a configured TLS connection that cannot be
// made is a failed connect retried with backoff; the client never speaks MQTT in
// the clear or without verifying the server.
func TestTLSFailuresAreRetriedNeverPlain(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t) // a CA that did not sign the server certificate
	tests := []struct {
		name    string
		server  *tls.Config // nil: plain TCP listener
		sec     Security
		wantLog string
	}{
		{"tls client, plain listener", nil,
			Security{Type: SecurityTLSAccessToken, AccessToken: "tok", CACert: p.caFile}, "tls dial 127.0.0.1"},
		{"unknown CA", p.serverTLS(false),
			Security{Type: SecurityTLSAccessToken, AccessToken: "tok", CACert: other.caFile}, "certificate signed by unknown authority"},
		{"system roots without caCert", p.serverTLS(false),
			Security{Type: SecurityTLSAccessToken, AccessToken: "tok"}, "certificate signed by unknown authority"},
		{"client certificate required", p.serverTLS(true),
			Security{Type: SecurityTLSAccessToken, AccessToken: "tok", CACert: p.caFile}, "tls: certificate required"},
		{"client certificate of another CA", p.serverTLS(true),
			Security{Type: SecurityTLSPrivateKey, CACert: p.caFile, Cert: other.clientCert, PrivateKey: other.clientKey}, "tls: unknown certificate authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, "127.0.0.1:0", newRecorder(""), tt.server)
			var logs logBuffer
			o := testOptions(b, "")
			o.Security = tt.sec
			o.Logger = logs.logger()
			c := newClient(t, o)
			stop := runClient(t, c)
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(logs.String(), "tbmqtt: connect failed") < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("fewer than 3 failed attempts logged within 5 s:\n%s", logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			stop()
			if c.Connected() || c.Reconnects() != 0 {
				t.Error("client connected")
			}
			if n := len(b.hook.connsSnapshot()); n != 0 {
				t.Errorf("broker received %d MQTT CONNECTs, want none", n)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log does not contain %q:\n%s", tt.wantLog, logs.String())
			}
		})
	}
}
