package connector

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

type nopConn struct{ name string }

func (c nopConn) Open(context.Context) error                  { return nil }
func (c nopConn) Close() error                                { return nil }
func (c nopConn) Name() string                                { return c.name }
func (c nopConn) Type() string                                { return "nop" }
func (c nopConn) ID() string                                  { return c.name }
func (c nopConn) IsConnected() bool                           { return true }
func (c nopConn) IsStopped() bool                             { return false }
func (c nopConn) OnAttributesUpdate(AttributeUpdate)          {}
func (c nopConn) ServerSideRPC(RPCRequest)                    {}
func nopFactory(Gateway, Config) (Connector, error)           { return nopConn{}, nil }
func nopUplink([]byte, *slog.Logger) (UplinkConverter, error) { return nil, nil }

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), want) {
			t.Fatalf("panic %v, want one containing %q", r, want)
		}
	}()
	f()
}

func TestRegistry(t *testing.T) {
	Register("regtest", "First", nopFactory)
	Register("regtest", "Second", nopFactory)
	if _, ok := Lookup("regtest", "Second"); !ok {
		t.Fatal("exact lookup failed")
	}
	if c, ok := DefaultClass("regtest"); !ok || c != "First" {
		t.Fatalf("default class %q, want the first registered", c)
	}
	if _, ok := Lookup("regtest", ""); !ok {
		t.Fatal("empty class must find the default")
	}
	if _, ok := Lookup("regtest", "Other"); ok {
		t.Fatal("an unknown class is not the default")
	}
	found := false
	for _, ty := range Types() {
		found = found || ty == "regtest"
	}
	if !found {
		t.Fatal("Types lacks regtest")
	}
	mustPanic(t, "twice", func() { Register("regtest", "First", nopFactory) })
	mustPanic(t, "needs", func() { Register("", "X", nopFactory) })
	mustPanic(t, "needs", func() { Register("t", "X", nil) })

	RegisterUplink("RegTestUplink", nopUplink)
	mustPanic(t, "twice", func() { RegisterUplink("RegTestUplink", nopUplink) })
	if _, err := (BuiltinConverters{}).Uplink("RegTestUplink", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := (BuiltinConverters{}).Uplink("NoSuch", nil); err == nil || !strings.Contains(err.Error(), `"NoSuch" not found`) {
		t.Fatalf("unknown converter error: %v", err)
	}
	if _, err := (BuiltinConverters{}).Downlink("NoSuch", nil); err == nil {
		t.Fatal("unknown downlink converter must fail")
	}
}
