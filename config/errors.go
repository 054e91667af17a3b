package config

import (
	"strconv"
	"strings"
)

// Error is one problem found in a configuration file. It prints as one line:
//
//	FILE: KEY.PATH: what is wrong (expected X, got Y)
//	FILE:LINE:COL: message          (syntax errors)
//
// File is empty for errors returned by ParseReportStrategy and
// ValidateReportStrategy, whose caller knows the file; File is "environment" and
// Path the variable name when a TB_GW_* environment variable holds the bad value.
type Error struct {
	File string
	Path string // key path, e.g. thingsboard.security.accessToken; may be empty
	Msg  string
	// Line and Col locate syntax errors (1-based); 0 when unknown. YAML syntax
	// errors carry a line but no column.
	Line, Col int
	// Err is the underlying cause (an *fs.PathError, ...), or nil.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
			if e.Col > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(e.Col))
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, so that errors.Is(err, fs.ErrNotExist) works.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found by Load, in the order found: type errors in file
// order, then the checks of values (ranges, required keys, files that must exist),
// then the connector entries and their files. Load returns it as *Errors.
type Errors struct {
	List []*Error
}

// Error joins the problems with "\n", one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual errors, for errors.Is and errors.As.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, x := range e.List {
		out[i] = x
	}
	return out
}

// errorsOrNil returns nil for an empty list, so that callers never get a non-nil
// error interface holding an empty list.
func errorsOrNil(list []*Error) error {
	if len(list) == 0 {
		return nil
	}
	return &Errors{List: list}
}
