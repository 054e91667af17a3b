package config

import (
	"encoding/json"

	"github.com/iotgw/iotgw/connector"
)

// Gateway is tb_gateway.json (or .yaml), parsed and validated once.
type Gateway struct {
	// Path is the main file, absolute; Dir is its folder, against which connector
	// files, the device filter file and relative data paths are resolved.
	Path, Dir   string
	Thingsboard Thingsboard
	Storage     Storage
	Connectors  []Connector
}

// Thingsboard is the "thingsboard" section.
type Thingsboard struct {
	Host      string
	Port      int // 1883
	QoS       int // 1; 0 or 1
	KeepAlive int // seconds, "keep_alive" (also "keepalive"), 120
	// TLS is "tls": true, or implied by a tls* security type or port 8883.
	TLS      bool
	Security Security

	ReportStrategy        connector.ReportStrategy // {type: ON_RECEIVED}
	MaxPayloadSizeBytes   int                      // 8196 in TB samples; 0 means 65535
	MinPackSendDelayMS    int
	MinPackSizeToSend     int
	Statistics            Statistics
	DeviceFiltering       DeviceFiltering
	CheckingDeviceActive  DeviceActivity // "checkingDeviceActivity"
	HandleDeviceRenaming  bool
	RemoteConfiguration   bool
	RemoteShell           bool // accepted; never enabled
	CheckConnectorsConfig int  // "checkConnectorsConfigurationInSeconds"; 0 = off
	// SyncSharedAttributesOnConnect is "syncDevicesSharedAttributesOnConnect" (true).
	SyncSharedAttributesOnConnect bool
}

// Security is "thingsboard.security".
type Security struct {
	// Type is accessToken, usernamePassword, tlsAccessToken or tlsPrivateKey. When the
	// file gives only an accessToken (old YAML files), Type is accessToken.
	Type        string
	AccessToken string
	ClientID    string
	Username    string
	Password    string
	// CACert, Cert and PrivateKey are file paths, resolved against the main file's folder.
	CACert, Cert, PrivateKey string
}

// Statistics is "thingsboard.statistics".
type Statistics struct {
	Enable                   bool
	StatsSendPeriodInSeconds int // 60
	// CustomStatsSendPeriodInSeconds and Configuration (custom commands file) are
	// accepted; custom commands are run only when Configuration is set.
	CustomStatsSendPeriodInSeconds int
	Configuration                  string
}

// DeviceFiltering is "thingsboard.deviceFiltering": a filter file of the list.json
// shape {"deny":{connector:[regexp...]},"allow":{...}}.
type DeviceFiltering struct {
	Enable     bool
	FilterFile string // resolved against the main file's folder
}

// DeviceActivity is "thingsboard.checkingDeviceActivity".
type DeviceActivity struct {
	CheckDeviceInactivity        bool
	InactivityTimeoutSeconds     int // 300
	InactivityCheckPeriodSeconds int // 10
}

// Storage is the "storage" section. Only the keys of Type matter; the others are
// accepted (the TB samples list every type's keys together).
type Storage struct {
	Type string // memory (default), file, sqlite

	// memory
	MaxRecordsCount  int // "max_records_count", 100000
	ReadRecordsCount int // "read_records_count", 100

	// file
	DataFolderPath    string // "data_folder_path", "./data/", resolved against Dir
	MaxFileCount      int    // "max_file_count", 10
	MaxRecordsPerFile int    // "max_records_per_file", 10000
	MaxReadRecords    int    // "max_read_records_count", 10 (also sqlite)

	// sqlite
	DataFilePath            string // "data_file_path", "./data/data.db", resolved against Dir
	MessagesTTLCheckInHours int    // 1
	MessagesTTLInDays       int    // 7
	SizeLimitMB             int    // "size_limit", 0 = none
	MaxDBAmount             int    // "max_db_amount"

	// iotgw additions
	// FsyncIntervalMS is "fsync_interval_ms": how long file and sqlite storage may
	// gather puts into one fsync. 0 (the default) syncs every group commit before Put
	// returns; a positive value lets Put return before the sync (data written in the
	// last interval can be lost on power loss, never on a process crash).
	FsyncIntervalMS int
}

// Connector is one entry of the "connectors" list, with its file loaded.
type Connector struct {
	Name          string
	Type          string
	Class         string // may be empty for built-in types
	ID            string // "id", or derived from name when absent
	Configuration string // as written in the main file
	Path          string // the connector file, absolute
	// Raw is the connector file's content (JSON). For a YAML main file with an inline
	// "configurationJson", it is that object as JSON.
	Raw json.RawMessage
	// LogLevel is the connector file's "logLevel" (INFO when absent), and
	// ReportStrategy its "reportStrategy" (nil when absent).
	LogLevel       string
	ReportStrategy *connector.ReportStrategy
}

// Warning is a non-fatal finding, such as an unknown key.
type Warning struct {
	File string
	Path string // key path, e.g. thingsboard.security.acessToken
	Msg  string
}

// String formats the warning as one line: "FILE: KEY.PATH: message".
func (w Warning) String() string {
	if w.Path == "" {
		return w.File + ": " + w.Msg
	}
	return w.File + ": " + w.Path + ": " + w.Msg
}
