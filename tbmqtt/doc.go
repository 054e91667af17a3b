// Package tbmqtt is the ThingsBoard MQTT platform client of iotgw: the topics and
// payloads of the ThingsBoard gateway and device APIs, connection security (access
// token, username/password, TLS with access token or X.509 client certificate), a
// publish path with acknowledgement tracking, subscriptions, and reconnection.
//
// It is built on github.com/eclipse/paho.mqtt.golang (MQTT 3.1.1) with paho's
// AutoReconnect and ConnectRetry turned off, and one fresh paho client per
// connection. The reasons:
//
//   - Delivery is at least once: a record may leave the gateway's storage only after
//     the broker acknowledged it. With auto-reconnect on, paho v1.5.1 resends the
//     stored in-flight publishes after a reconnect under new tokens and completes the
//     caller's original token without an error (messageIds.claimID), that is, reports
//     it delivered before any PUBACK; a caller would delete a record that may be lost.
//     With it off and a clean session, paho fails every in-flight token when the link
//     drops, and this package adds its own tracking on top (see Pending): a Pending
//     reports success only when paho's token completed without an error, which for
//     QoS 1 happens only on PUBACK; when the link drops first it reports
//     ErrConnectionLost, whatever paho does, so the gateway sends the message again
//     after the reconnect.
//   - paho's Disconnect warns that a client must not be reused after it; a new client
//     per connection has fresh message ids, store and router, and callbacks of an old
//     connection can only ever touch that old connection's state.
//   - The reconnect policy is ours: exponential backoff with jitter (1 s to 60 s by
//     default), reset after a successful connect, one log line per failed attempt,
//     and subscriptions remade on every connect before OnConnect callbacks run.
//   - With TLS configured the client dials TLS itself and never falls back to plain
//     TCP: a failed handshake is a failed connect and is retried with backoff.
//
// Publish is cheap and never starts a goroutine: it hands the message to paho in call
// order and keeps at most Options.MaxInflight messages unacknowledged (brokers
// disconnect clients that exceed their receive maximum; mochi's is 1024). One
// goroutine per connection settles the Pendings in order from paho's token Done
// channels. If no acknowledgement arrives for WriteTimeout while publishes are
// outstanding, the link is considered dead, closed, and made again.
//
// Message handlers run in goroutines started by paho (OrderMatters is off, so a
// handler never blocks paho's network loop). A handler must not block for long: the
// gateway hands the work off to its own workers. Run waits for running handlers
// before it returns.
package tbmqtt
