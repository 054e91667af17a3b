// Package sdnotify implements systemd's sd_notify protocol with the standard library,
// for a service started with Type=notify (and WatchdogSec=): readiness, stopping,
// reloading, status text and watchdog keep-alives.
//
// The protocol is one unix datagram per message, sent to the socket named by the
// NOTIFY_SOCKET environment variable; a name that starts with '@' is in the Linux
// abstract namespace (Go's net package maps the leading '@' to the NUL byte for us).
// When NOTIFY_SOCKET is unset (started by hand, in a container, in tests) every
// function is a no-op that returns nil, so callers need no "am I under systemd" checks.
//
// Typical use by the run command:
//
//	sdnotify.Ready()                   // after connectors are open
//	go sdnotify.KeepAlive(ctx)         // owned goroutine; pings at half WatchdogSec
//	sdnotify.Stopping()                // when shutdown begins
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// writeTimeout bounds a send: a datagram to a full receive queue would otherwise block,
// and a stuck systemd must not stall the gateway's shutdown path.
const writeTimeout = time.Second

// Notify sends state, one or more newline-separated VAR=value assignments, to the
// service manager. It returns nil without doing anything when NOTIFY_SOCKET is unset.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		// systemd also supports vsock: addresses (for VMs); a gateway never gets one.
		return fmt.Errorf("sdnotify: unsupported NOTIFY_SOCKET %q", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", name, err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", name, err)
	}
	return nil
}

// Ready tells the service manager that start-up is finished (READY=1); with
// Type=notify, systemctl start returns and dependent units start only after it.
func Ready() error { return Notify("READY=1") }

// Stopping tells the service manager that the service is shutting down (STOPPING=1).
func Stopping() error { return Notify("STOPPING=1") }

// Reloading tells the service manager that a configuration reload has begun
// (RELOADING=1, with the MONOTONIC_USEC timestamp that Type=notify-reload requires).
// Send Ready when the reload is done.
func Reloading() error {
	msg := "RELOADING=1"
	if usec, ok := monotonicUsec(); ok {
		msg += "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10)
	}
	return Notify(msg)
}

// Watchdog sends one watchdog keep-alive (WATCHDOG=1).
func Watchdog() error { return Notify("WATCHDOG=1") }

// Status sets the one-line status text shown by systemctl status (STATUS=...).
// Newlines would start a new assignment in the protocol, so they become spaces.
func Status(s string) error {
	return Notify("STATUS=" + strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}

// WatchdogInterval reports the watchdog timeout that systemd expects keep-alives
// within (WATCHDOG_USEC), and whether the watchdog is enabled for this process:
// WATCHDOG_PID, when set, must be our own pid (the variables are inherited by
// children, which must not think they are watched). Send keep-alives at about half
// the returned interval.
func WatchdogInterval() (time.Duration, bool) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0, false
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}

// KeepAlive sends a watchdog keep-alive at half the WatchdogInterval until ctx is
// done. It returns nil at once when the watchdog is not enabled. The caller owns the
// goroutine it runs in.
//
// A failed send does not stop the pings: one lost datagram (a busy systemd) must not
// turn into a restart, and if every send fails systemd restarts us anyway, which is
// the point of the watchdog. KeepAlive returns the first error it met, if any, once
// ctx is done.
func KeepAlive(ctx context.Context) error {
	interval, ok := WatchdogInterval()
	if !ok {
		return nil
	}
	first := Watchdog()
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return first
		case <-t.C:
			if err := Watchdog(); err != nil && first == nil {
				first = err
			}
		}
	}
}
