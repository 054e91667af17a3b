package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/iotgw/iotgw/connector"
)

// LoadOptions changes how LoadWith reads the configuration.
type LoadOptions struct {
	// Getenv looks up the TB_GW_* environment overrides; nil means os.Getenv. An
	// empty value counts as unset.
	Getenv func(string) string
}

// Load reads the main configuration file (tb_gateway.json, or .yaml/.yml, chosen by
// the extension), applies defaults and the TB_GW_* environment overrides, reads every
// connector file it names, and validates the lot. It returns every problem at once,
// as *Errors; warnings (unknown keys, ...) do not stop the load.
func Load(path string) (*Gateway, []Warning, error) {
	return LoadWith(path, LoadOptions{})
}

// EnvSource is the File of errors about values that came from TB_GW_* variables.
const EnvSource = "environment"

// envOverrides maps each TB_GW_* variable to the key path it overrides.
var envOverrides = []struct{ name, path string }{
	{"TB_GW_HOST", "thingsboard.host"},
	{"TB_GW_PORT", "thingsboard.port"},
	{"TB_GW_SECURITY_TYPE", "thingsboard.security.type"},
	{"TB_GW_ACCESS_TOKEN", "thingsboard.security.accessToken"},
	{"TB_GW_CA_CERT", "thingsboard.security.caCert"},
	{"TB_GW_PRIVATE_KEY", "thingsboard.security.privateKey"},
	{"TB_GW_CERT", "thingsboard.security.cert"},
	{"TB_GW_CLIENT_ID", "thingsboard.security.clientId"},
	{"TB_GW_USERNAME", "thingsboard.security.username"},
	{"TB_GW_PASSWORD", "thingsboard.security.password"},
}

// loader holds the state of one LoadWith call.
type loader struct {
	walker
	given string // the main file's path as given to LoadWith
	gw    *Gateway
	// env maps the key paths set from the environment to their variable, so that a
	// bad value is reported against the variable rather than the file.
	env map[string]string
	// seen records which keys the file set, where a default depends on it.
	securitySeen, reportStrategySeen, statsPeriodSeen bool
	sendDataOnlyOnChange                              bool
	oldStatsPeriod                                    int
	connectorNodes                                    *node
}

// LoadWith is Load with options (tests inject the environment).
func LoadWith(path string, opts LoadOptions) (*Gateway, []Warning, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, &Errors{List: []*Error{{File: showPath(path), Msg: "cannot resolve path: " + err.Error(), Err: err}}}
	}
	file := showPath(path)
	data, err := readRegular(abs)
	if err != nil {
		return nil, nil, &Errors{List: []*Error{{File: file, Msg: "cannot read file: " + errText(err), Err: err}}}
	}
	var tree *node
	var perr *Error
	switch ext := strings.ToLower(filepath.Ext(abs)); ext {
	case ".json":
		tree, perr = parseJSON(file, data)
	case ".yaml", ".yml":
		tree, perr = parseYAML(file, data)
	default:
		return nil, nil, &Errors{List: []*Error{{File: file,
			Msg: "unsupported file extension (expected .json, .yaml or .yml, got " + strconv.Quote(ext) + ")"}}}
	}
	if perr != nil {
		return nil, nil, &Errors{List: []*Error{perr}}
	}

	l := &loader{walker: walker{file: file}, given: path, gw: defaults(), env: map[string]string{}}
	l.gw.Path, l.gw.Dir = abs, filepath.Dir(abs)
	if tree.kind != kObject {
		l.wrongType("", "an object with thingsboard, storage and connectors", tree)
		return nil, nil, &Errors{List: l.errs}
	}
	l.main(tree)
	l.applyEnv(getenv)
	l.finish()
	l.validate()
	l.connectors(l.connectorNodes)
	if err := errorsOrNil(l.errs); err != nil {
		return nil, l.warns, err
	}
	return l.gw, l.warns, nil
}

// errText is the reason of a file system error without the path, which the
// message already names.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// defaults returns a Gateway holding every default of the main file.
func defaults() *Gateway {
	return &Gateway{
		Thingsboard: Thingsboard{
			Port:                 1883,
			QoS:                  1,
			KeepAlive:            120,
			ReportStrategy:       connector.ReportStrategy{Type: connector.OnReceived},
			MinPackSendDelayMS:   200,
			MinPackSizeToSend:    50,
			HandleDeviceRenaming: true,
			Statistics: Statistics{
				Enable:                         true,
				StatsSendPeriodInSeconds:       60,
				CustomStatsSendPeriodInSeconds: 3600,
			},
			CheckingDeviceActive: DeviceActivity{
				InactivityTimeoutSeconds:     300,
				InactivityCheckPeriodSeconds: 10,
			},
			SyncSharedAttributesOnConnect: true,
		},
		Storage: Storage{
			Type:                    "memory",
			MaxRecordsCount:         100000,
			ReadRecordsCount:        100,
			DataFolderPath:          "./data/",
			MaxFileCount:            10,
			MaxRecordsPerFile:       10000,
			MaxReadRecords:          10,
			DataFilePath:            "./data/data.db",
			MessagesTTLCheckInHours: 1,
			MessagesTTLInDays:       7,
		},
	}
}

// main walks the top level of the main file.
func (l *loader) main(n *node) {
	l.object(n, "", []field{
		{"thingsboard", l.thingsboard},
		{"storage", l.storage},
		{"connectors", func(n *node, _ string) { l.connectorNodes = n }},
		// The gRPC server for out-of-process connectors and the Python logging
		// configuration have no counterpart in iotgw.
		{"grpc", nil},
		{"logs", nil},
	})
}

// thingsboard walks the "thingsboard" section.
func (l *loader) thingsboard(n *node, path string) {
	tb := &l.gw.Thingsboard
	l.object(n, path, []field{
		{"host", func(n *node, p string) { l.str(n, p, &tb.Host) }},
		{"port", func(n *node, p string) { l.integer(n, p, &tb.Port) }},
		{"qos", func(n *node, p string) { l.integer(n, p, &tb.QoS) }},
		{"keep_alive", func(n *node, p string) { l.integer(n, p, &tb.KeepAlive) }},
		{"keepalive", func(n *node, p string) { l.integer(n, p, &tb.KeepAlive) }},
		{"tls", func(n *node, p string) { l.boolean(n, p, &tb.TLS) }},
		{"security", l.security},
		{"reportStrategy", func(n *node, p string) {
			if rs := l.reportStrategy(n, p); rs != nil {
				tb.ReportStrategy = *rs
				l.reportStrategySeen = true
			}
		}},
		{"maxPayloadSizeBytes", func(n *node, p string) { l.integer(n, p, &tb.MaxPayloadSizeBytes) }},
		{"minPackSendDelayMS", func(n *node, p string) { l.integer(n, p, &tb.MinPackSendDelayMS) }},
		{"minPackSizeToSend", func(n *node, p string) { l.integer(n, p, &tb.MinPackSizeToSend) }},
		{"statistics", l.statistics},
		{"deviceFiltering", func(n *node, p string) {
			l.object(n, p, []field{
				{"enable", func(n *node, p string) { l.boolean(n, p, &tb.DeviceFiltering.Enable) }},
				{"filterFile", func(n *node, p string) { l.str(n, p, &tb.DeviceFiltering.FilterFile) }},
			})
		}},
		{"checkingDeviceActivity", func(n *node, p string) {
			a := &tb.CheckingDeviceActive
			l.object(n, p, []field{
				{"checkDeviceInactivity", func(n *node, p string) { l.boolean(n, p, &a.CheckDeviceInactivity) }},
				{"inactivityTimeoutSeconds", func(n *node, p string) { l.integer(n, p, &a.InactivityTimeoutSeconds) }},
				{"inactivityCheckPeriodSeconds", func(n *node, p string) { l.integer(n, p, &a.InactivityCheckPeriodSeconds) }},
			})
		}},
		{"handleDeviceRenaming", func(n *node, p string) { l.boolean(n, p, &tb.HandleDeviceRenaming) }},
		{"remoteConfiguration", func(n *node, p string) { l.boolean(n, p, &tb.RemoteConfiguration) }},
		{"remoteShell", func(n *node, p string) { l.boolean(n, p, &tb.RemoteShell) }},
		{"checkConnectorsConfigurationInSeconds", func(n *node, p string) { l.integer(n, p, &tb.CheckConnectorsConfig) }},
		{"syncDevicesSharedAttributesOnConnect", func(n *node, p string) { l.boolean(n, p, &tb.SyncSharedAttributesOnConnect) }},
		// Before 3.6 the Python gateway had a flag instead of reportStrategy, and the
		// statistics period outside "statistics"; both still appear in old files.
		{"sendDataOnlyOnChange", func(n *node, p string) { l.boolean(n, p, &l.sendDataOnlyOnChange) }},
		{"statsSendPeriodInSeconds", func(n *node, p string) { l.integer(n, p, &l.oldStatsPeriod) }},
		// Accepted and ignored: the platform's session limits (getSessionLimits)
		// govern rates in iotgw; the rest are Python-only features.
		{"rateLimits", nil},
		{"dpRateLimits", nil},
		{"messagesRateLimits", nil},
		{"deviceMessagesRateLimits", nil},
		{"deviceRateLimits", nil},
		{"deviceDpRateLimits", nil},
		{"latencyDebugMode", nil},
		{"logs", nil},
		{"provisioning", nil},
	})
}

// security walks "thingsboard.security".
func (l *loader) security(n *node, path string) {
	s := &l.gw.Thingsboard.Security
	l.securitySeen = l.object(n, path, []field{
		{"type", func(n *node, p string) { l.str(n, p, &s.Type) }},
		{"accessToken", func(n *node, p string) { l.str(n, p, &s.AccessToken) }},
		{"clientId", func(n *node, p string) { l.str(n, p, &s.ClientID) }},
		{"username", func(n *node, p string) { l.str(n, p, &s.Username) }},
		{"password", func(n *node, p string) { l.str(n, p, &s.Password) }},
		{"caCert", func(n *node, p string) { l.str(n, p, &s.CACert) }},
		{"cert", func(n *node, p string) { l.str(n, p, &s.Cert) }},
		{"privateKey", func(n *node, p string) { l.str(n, p, &s.PrivateKey) }},
		{"tls", func(n *node, p string) { l.boolean(n, p, &l.gw.Thingsboard.TLS) }},
		// Certificate expiry checks and disabling verification are not done:
		// iotgw always verifies the server's certificate.
		{"insecure", nil},
		{"checkCertPeriod", nil},
		{"certificateDaysLeft", nil},
	})
}

// statistics walks "thingsboard.statistics".
func (l *loader) statistics(n *node, path string) {
	st := &l.gw.Thingsboard.Statistics
	l.object(n, path, []field{
		{"enable", func(n *node, p string) { l.boolean(n, p, &st.Enable) }},
		{"statsSendPeriodInSeconds", func(n *node, p string) {
			l.integer(n, p, &st.StatsSendPeriodInSeconds)
			l.statsPeriodSeen = n.kind != kNull
		}},
		{"customStatsSendPeriodInSeconds", func(n *node, p string) { l.integer(n, p, &st.CustomStatsSendPeriodInSeconds) }},
		{"configuration", func(n *node, p string) { l.str(n, p, &st.Configuration) }},
		// The TB UI's inline custom commands; iotgw runs the commands file only.
		{"commands", nil},
	})
}

// storage walks the "storage" section. All types' keys are accepted whatever the
// type, as the TB samples list them together.
func (l *loader) storage(n *node, path string) {
	s := &l.gw.Storage
	l.object(n, path, []field{
		{"type", func(n *node, p string) { l.str(n, p, &s.Type) }},
		{"max_records_count", func(n *node, p string) { l.integer(n, p, &s.MaxRecordsCount) }},
		{"read_records_count", func(n *node, p string) { l.integer(n, p, &s.ReadRecordsCount) }},
		{"data_folder_path", func(n *node, p string) { l.str(n, p, &s.DataFolderPath) }},
		{"max_file_count", func(n *node, p string) { l.integer(n, p, &s.MaxFileCount) }},
		{"max_records_per_file", func(n *node, p string) { l.integer(n, p, &s.MaxRecordsPerFile) }},
		{"max_read_records_count", func(n *node, p string) { l.integer(n, p, &s.MaxReadRecords) }},
		{"data_file_path", func(n *node, p string) { l.str(n, p, &s.DataFilePath) }},
		{"messages_ttl_check_in_hours", func(n *node, p string) { l.integer(n, p, &s.MessagesTTLCheckInHours) }},
		{"messages_ttl_in_days", func(n *node, p string) { l.integer(n, p, &s.MessagesTTLInDays) }},
		{"size_limit", func(n *node, p string) { l.integer(n, p, &s.SizeLimitMB) }},
		{"max_db_amount", func(n *node, p string) { l.integer(n, p, &s.MaxDBAmount) }},
		{"fsync_interval_ms", func(n *node, p string) { l.integer(n, p, &s.FsyncIntervalMS) }},
	})
}

// applyEnv applies the TB_GW_* overrides, after the file.
func (l *loader) applyEnv(getenv func(string) string) {
	tb := &l.gw.Thingsboard
	s := &tb.Security
	for _, o := range envOverrides {
		v := getenv(o.name)
		if v == "" {
			continue
		}
		l.env[o.path] = o.name
		switch o.name {
		case "TB_GW_HOST":
			tb.Host = v
		case "TB_GW_PORT":
			p, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				l.errs = append(l.errs, &Error{File: EnvSource, Path: o.name,
					Msg: "wrong type (expected an integer, got " + strconv.Quote(v) + ")"})
				continue
			}
			tb.Port = p
		case "TB_GW_SECURITY_TYPE":
			s.Type = v
		case "TB_GW_ACCESS_TOKEN":
			s.AccessToken = v
		case "TB_GW_CA_CERT":
			s.CACert = v
		case "TB_GW_PRIVATE_KEY":
			s.PrivateKey = v
		case "TB_GW_CERT":
			s.Cert = v
		case "TB_GW_CLIENT_ID":
			s.ClientID = v
		case "TB_GW_USERNAME":
			s.Username = v
		case "TB_GW_PASSWORD":
			s.Password = v
		}
	}
}

// finish derives the values that depend on several keys: legacy keys, the
// security type of old files, TLS, and absolute paths.
func (l *loader) finish() {
	tb := &l.gw.Thingsboard
	s := &tb.Security
	if l.sendDataOnlyOnChange && !l.reportStrategySeen {
		tb.ReportStrategy = connector.ReportStrategy{Type: connector.OnChange}
	}
	if l.oldStatsPeriod != 0 && !l.statsPeriodSeen {
		tb.Statistics.StatsSendPeriodInSeconds = l.oldStatsPeriod
	}
	if s.Type == "" {
		// Old files give the credentials without a type.
		switch {
		case s.AccessToken != "":
			s.Type = "accessToken"
		case s.Username != "":
			s.Type = "usernamePassword"
		case s.Cert != "" || s.PrivateKey != "":
			s.Type = "tlsPrivateKey"
		}
	}
	// TLS is never dropped silently: a tls* type, port 8883, or a CA certificate
	// (which the Python gateway also takes as a request for TLS) turn it on.
	if strings.HasPrefix(s.Type, "tls") || tb.Port == 8883 || s.CACert != "" {
		tb.TLS = true
	}
	dir := l.gw.Dir
	s.CACert = resolve(dir, s.CACert)
	s.Cert = resolve(dir, s.Cert)
	s.PrivateKey = resolve(dir, s.PrivateKey)
	tb.DeviceFiltering.FilterFile = resolve(dir, tb.DeviceFiltering.FilterFile)
	tb.Statistics.Configuration = resolve(dir, tb.Statistics.Configuration)
	st := &l.gw.Storage
	st.DataFolderPath = resolve(dir, st.DataFolderPath)
	// The 3.8.3 sample gives a folder ("./data/") as data_file_path; a folder means
	// the default file name inside it.
	if strings.HasSuffix(st.DataFilePath, "/") || strings.HasSuffix(st.DataFilePath, string(filepath.Separator)) {
		st.DataFilePath += "data.db"
	}
	st.DataFilePath = resolve(dir, st.DataFilePath)
}

// resolve makes p absolute against dir; "" stays "".
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// at returns the file and path to report a problem with the value at path: the
// environment variable that set it, or the main file.
func (l *loader) at(path string) (file, p string) {
	if name, ok := l.env[path]; ok {
		return EnvSource, name
	}
	return l.file, path
}

// invalid records a problem with the value at path, unless the value already
// had one (a value of the wrong type is not also reported as missing).
func (l *loader) invalid(path, msg string) {
	l.add(&Error{Msg: msg}, path)
}

// add records e against path (see at), unless there is an error there already.
func (l *loader) add(e *Error, path string) {
	e.File, e.Path = l.at(path)
	for _, x := range l.errs {
		if x.File == e.File && x.Path == e.Path {
			return
		}
	}
	l.errs = append(l.errs, e)
}

// checkRange reports v at path unless lo <= v <= hi.
func (l *loader) checkRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		var want string
		switch {
		case hi == maxInt:
			want = fmt.Sprintf("an integer >= %d", lo)
		default:
			want = fmt.Sprintf("an integer from %d to %d", lo, hi)
		}
		l.invalid(path, fmt.Sprintf("out of range (expected %s, got %d)", want, v))
	}
}

const maxInt = int(^uint(0) >> 1)

// oneOf reports v at path unless it is one of values.
func (l *loader) oneOf(path, v string, values ...string) bool {
	for _, x := range values {
		if v == x {
			return true
		}
	}
	if v == "" {
		l.invalid(path, "missing (expected one of "+strings.Join(values, ", ")+", got nothing)")
	} else {
		l.invalid(path, "invalid value (expected one of "+strings.Join(values, ", ")+", got "+strconv.Quote(v)+")")
	}
	return false
}

// mustExist reports path unless the file it names exists.
func (l *loader) mustExist(path, file, what string) {
	if file == "" {
		return
	}
	fi, err := os.Stat(file)
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		l.add(&Error{Err: err,
			Msg: fmt.Sprintf("cannot read %s (expected a file at %s, got %q)", what, showPath(file), errText(err))}, path)
	}
}

// validate checks the values that types alone do not: ranges, enumerations, the
// credentials each security type needs, and the files they name.
func (l *loader) validate() {
	tb := &l.gw.Thingsboard
	s := &tb.Security
	if tb.Host == "" {
		l.invalid("thingsboard.host", "missing (expected the platform's host name or address, got nothing)")
	}
	l.checkRange("thingsboard.port", tb.Port, 1, 65535)
	if tb.QoS != 0 && tb.QoS != 1 {
		l.invalid("thingsboard.qos", fmt.Sprintf("invalid value (expected 0 or 1, got %d)", tb.QoS))
	}
	l.checkRange("thingsboard.keep_alive", tb.KeepAlive, 0, 65535)
	l.checkRange("thingsboard.maxPayloadSizeBytes", tb.MaxPayloadSizeBytes, 0, maxInt)
	l.checkRange("thingsboard.minPackSendDelayMS", tb.MinPackSendDelayMS, 0, maxInt)
	l.checkRange("thingsboard.minPackSizeToSend", tb.MinPackSizeToSend, 0, maxInt)
	l.checkRange("thingsboard.checkConnectorsConfigurationInSeconds", tb.CheckConnectorsConfig, 0, maxInt)
	l.checkRange("thingsboard.statistics.statsSendPeriodInSeconds", tb.Statistics.StatsSendPeriodInSeconds, 1, maxInt)
	l.checkRange("thingsboard.statistics.customStatsSendPeriodInSeconds", tb.Statistics.CustomStatsSendPeriodInSeconds, 0, maxInt)
	l.checkRange("thingsboard.checkingDeviceActivity.inactivityTimeoutSeconds", tb.CheckingDeviceActive.InactivityTimeoutSeconds, 1, maxInt)
	l.checkRange("thingsboard.checkingDeviceActivity.inactivityCheckPeriodSeconds", tb.CheckingDeviceActive.InactivityCheckPeriodSeconds, 1, maxInt)
	for _, e := range validateReportStrategy(l.file, "thingsboard.reportStrategy", &tb.ReportStrategy) {
		l.add(e, e.Path)
	}
	if tb.DeviceFiltering.Enable {
		if tb.DeviceFiltering.FilterFile == "" {
			l.invalid("thingsboard.deviceFiltering.filterFile", "missing (expected a filter file when enable is true, got nothing)")
		}
		l.mustExist("thingsboard.deviceFiltering.filterFile", tb.DeviceFiltering.FilterFile, "filter file")
	}
	if tb.Statistics.Enable {
		l.mustExist("thingsboard.statistics.configuration", tb.Statistics.Configuration, "custom statistics file")
	}

	// Security: the credentials the type needs.
	switch {
	case !l.securitySeen && s.Type == "":
		l.invalid("thingsboard.security", "missing (expected an object with type and credentials, got nothing)")
	case l.oneOf("thingsboard.security.type", s.Type, "accessToken", "usernamePassword", "tlsAccessToken", "tlsPrivateKey"):
		need := func(key, v, what string) {
			if v == "" {
				l.invalid("thingsboard.security."+key, "missing (expected "+what+" for security type "+s.Type+", got nothing)")
			}
		}
		switch s.Type {
		case "accessToken", "tlsAccessToken":
			need("accessToken", s.AccessToken, "the gateway device's access token")
		case "usernamePassword":
			need("username", s.Username, "an MQTT username")
		case "tlsPrivateKey":
			need("cert", s.Cert, "a client certificate file")
			need("privateKey", s.PrivateKey, "a private key file")
		}
	}
	l.mustExist("thingsboard.security.caCert", s.CACert, "CA certificate")
	l.mustExist("thingsboard.security.cert", s.Cert, "client certificate")
	l.mustExist("thingsboard.security.privateKey", s.PrivateKey, "private key")

	// Storage: only the chosen type's keys matter.
	st := &l.gw.Storage
	if l.oneOf("storage.type", st.Type, "memory", "file", "sqlite") {
		switch st.Type {
		case "memory":
			l.checkRange("storage.max_records_count", st.MaxRecordsCount, 1, maxInt)
			l.checkRange("storage.read_records_count", st.ReadRecordsCount, 1, maxInt)
		case "file":
			l.checkRange("storage.max_file_count", st.MaxFileCount, 1, maxInt)
			l.checkRange("storage.max_records_per_file", st.MaxRecordsPerFile, 1, maxInt)
			l.checkRange("storage.max_read_records_count", st.MaxReadRecords, 1, maxInt)
		case "sqlite":
			l.checkRange("storage.max_read_records_count", st.MaxReadRecords, 1, maxInt)
			l.checkRange("storage.messages_ttl_check_in_hours", st.MessagesTTLCheckInHours, 1, maxInt)
			l.checkRange("storage.messages_ttl_in_days", st.MessagesTTLInDays, 1, maxInt)
			l.checkRange("storage.size_limit", st.SizeLimitMB, 0, maxInt)
			l.checkRange("storage.max_db_amount", st.MaxDBAmount, 0, maxInt)
		}
	}
	l.checkRange("storage.fsync_interval_ms", st.FsyncIntervalMS, 0, maxInt)
}
