// Package cli is the iotgw command line. Main is the whole program; a custom build
// with its own connectors is a main package that imports cli, connectors/all and the
// user's connector packages (each registering itself from init), and calls
// os.Exit(cli.Main(os.Args[1:])).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/iotgw/iotgw/buildinfo"
	"github.com/iotgw/iotgw/config"
)

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1 // runtime failure or invalid configuration
	exitUsage  = 2
	stopBudget = 5 * time.Second
)

// env is what a command sees of the process; tests give their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// signals delivers SIGINT/SIGTERM/SIGHUP; nil means the process's own.
	signals func(chan<- os.Signal)
}

// Main runs the iotgw command line with args (without the program name) and
// returns the process exit code.
func Main(args []string) int {
	return run(args, env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		signals: func(c chan<- os.Signal) {
			signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		},
	})
}

const usage = `iotgw — IoT gateway for ThingsBoard, one static binary.

Usage:
  iotgw run     [--config PATH] [--http ADDR] [--log-format text|json] [--log-level LEVEL] [--extensions DIR]
  iotgw check   --config PATH
  iotgw convert --config CONNECTOR.json [--device NAME]   (frames on stdin, JSON lines out)
  iotgw demo    [--http ADDR] [--rate N]
  iotgw sim serial --link PATH [--rate N] [--count N] [--scenario FILE]
  iotgw platform [--mqtt ADDR] [--http ADDR] [--token T ...]
  iotgw version

--config defaults to $IOTGW_CONFIG, then config/tb_gateway.json.
`

func run(args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, e)
	case "check":
		return cmdCheck(rest, e)
	case "convert":
		return cmdConvert(rest, e)
	case "demo":
		return cmdDemo(rest, e)
	case "sim":
		return cmdSim(rest, e)
	case "platform":
		return cmdPlatform(rest, e)
	case "version", "--version", "-v":
		fmt.Fprintln(e.stdout, buildinfo.String())
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "iotgw: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// newFlags makes a flag set that reports errors to stderr without exiting.
func newFlags(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("iotgw "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseFlags parses; it returns an exit code and false when the command must stop.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

func defaultConfig(e env) string {
	if p := e.getenv("IOTGW_CONFIG"); p != "" {
		return p
	}
	return filepath.Join("config", "tb_gateway.json")
}

// loadConfig loads the main file and prints its warnings; on error it prints every
// error line and returns nil.
func loadConfig(path string, e env, log *slog.Logger) *config.Gateway {
	cfg, warnings, err := config.LoadWith(path, config.LoadOptions{Getenv: e.getenv})
	for _, w := range warnings {
		if log != nil {
			log.Warn(w.String())
		} else {
			fmt.Fprintln(e.stderr, "warning: "+w.String())
		}
	}
	if err != nil {
		printErr(e.stderr, err)
		return nil
	}
	return cfg
}

// printErr prints an error as one or more lines, never a stack trace.
func printErr(w io.Writer, err error) {
	fmt.Fprintln(w, err.Error())
}

// signalContext returns a context cancelled on SIGINT/SIGTERM, and a channel of
// SIGHUPs (configuration reload).
func signalContext(e env) (context.Context, <-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan struct{}, 1)
	if e.signals == nil {
		return ctx, hup, cancel
	}
	sigs := make(chan os.Signal, 4)
	e.signals(sigs)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					select {
					case hup <- struct{}{}:
					default:
					}
					continue
				}
				cancel()
				// A second signal while stopping exits at once.
				select {
				case <-sigs:
					os.Exit(exitError)
				case <-done:
				}
				return
			case <-done:
				return
			}
		}
	}()
	return ctx, hup, func() {
		signal.Reset(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		close(done)
		cancel()
	}
}
