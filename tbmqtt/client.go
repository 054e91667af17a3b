package tbmqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Errors of Pending.Wait. Both mean the broker did not acknowledge the message and
// the caller should send it again after the next connect.
var (
	// ErrNotConnected: the message was not sent because there was no connection.
	ErrNotConnected = errors.New("tbmqtt: not connected")
	// ErrConnectionLost: the connection ended before the broker acknowledged the
	// message (it may or may not have arrived).
	ErrConnectionLost = errors.New("tbmqtt: connection lost before acknowledgement")
)

// errAckTimeout closes a link on which no acknowledgement came for WriteTimeout.
var errAckTimeout = errors.New("no acknowledgement within the write timeout")

// quiesce is how long Run's final Disconnect waits for the DISCONNECT to be written.
const quiesce = 250 // ms

// Client is a ThingsBoard MQTT client. Create it with New, register subscriptions and
// OnConnect callbacks, and call Run. All methods are safe for concurrent use.
type Client struct {
	s   *settings
	log *slog.Logger

	// pubMu orders Publish calls: a message reaches paho's outbound queue in the
	// order Publish was called, and teardown holds it to stop new enqueues.
	pubMu sync.Mutex
	cur   atomic.Pointer[link] // the connected link, nil when not connected

	// stateMu guards subs and onConnect. Run holds it while it subscribes on a new
	// link, so a Subscribe call is either in that pass or sees the new link.
	stateMu   sync.Mutex
	subs      []subscription
	onConnect []func(context.Context)

	// upMu makes cur and up change together: up is closed exactly while cur is set.
	upMu sync.Mutex
	up   chan struct{}

	connects atomic.Uint64
	running  atomic.Bool

	// Handlers in flight, so that Run waits for them before it returns.
	hmu      sync.Mutex
	hcond    *sync.Cond
	hrunning int
	hclosed  bool
}

type subscription struct {
	topic string
	qos   byte
	h     mqtt.MessageHandler
}

// New validates the options and loads the TLS files (errors name the file). It does
// not connect: Run does.
func New(o Options) (*Client, error) {
	s, err := newSettings(o)
	if err != nil {
		return nil, err
	}
	c := &Client{s: s, log: s.Logger, up: make(chan struct{})}
	c.hcond = sync.NewCond(&c.hmu)
	return c, nil
}

// ClientID is the MQTT client id the client presents (configured or random).
func (c *Client) ClientID() string { return c.s.clientID }

// Connected reports whether the client is connected and subscribed.
func (c *Client) Connected() bool { return c.cur.Load() != nil }

// WaitConnected returns nil once the client is connected, or ctx's error.
func (c *Client) WaitConnected(ctx context.Context) error {
	c.upMu.Lock()
	up := c.up
	c.upMu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconnects is the number of successful connects minus one.
func (c *Client) Reconnects() uint64 {
	if n := c.connects.Load(); n > 0 {
		return n - 1
	}
	return 0
}

// Subscribe registers h for messages on topic (an MQTT filter). The subscription is
// made on every connect, before OnConnect callbacks run, and at once when the client
// is connected. A later Subscribe to the same filter replaces the handler.
//
// h runs in its own goroutine, so it never blocks the network loop, but it must not
// block for long: hand the work off. payload is h's to keep. A subscription the
// broker refuses closes the link, and it is tried again with the next connect.
func (c *Client) Subscribe(topic string, qos byte, h func(topic string, payload []byte)) {
	sub := subscription{topic: topic, qos: qos, h: c.wrap(h)}
	c.stateMu.Lock()
	replaced := false
	for i := range c.subs {
		if c.subs[i].topic == topic {
			c.subs[i], replaced = sub, true
		}
	}
	if !replaced {
		c.subs = append(c.subs, sub)
	}
	l := c.cur.Load()
	c.stateMu.Unlock()
	if l != nil {
		if err := c.subscribe(context.Background(), l, sub); err != nil {
			c.log.Warn("tbmqtt: subscribe failed, reconnecting", "topic", topic, "err", err)
			l.kill(err)
		}
	}
}

// OnConnect registers f to run after every successful connect and subscribe. The
// callbacks run one after another in one goroutine owned by the client; ctx ends
// when that connection is lost or Run stops, and f must return then, because the
// next connect waits for it.
func (c *Client) OnConnect(f func(ctx context.Context)) {
	c.stateMu.Lock()
	c.onConnect = append(c.onConnect, f)
	c.stateMu.Unlock()
}

// wrap adapts h to paho and counts it in flight so that Run can wait for it.
func (c *Client) wrap(h func(string, []byte)) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		c.hmu.Lock()
		if c.hclosed {
			c.hmu.Unlock()
			return
		}
		c.hrunning++
		c.hmu.Unlock()
		defer func() {
			c.hmu.Lock()
			c.hrunning--
			if c.hrunning == 0 {
				c.hcond.Broadcast()
			}
			c.hmu.Unlock()
		}()
		h(m.Topic(), m.Payload())
	}
}

// Pending is the outcome of one Publish.
type Pending struct {
	tok  mqtt.Token
	done chan struct{}
	err  error // written before done is closed
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func failed(err error) *Pending { return &Pending{done: closedChan, err: err} }

func (p *Pending) finish(err error) {
	p.err = err
	close(p.done)
}

// Done is closed when the outcome is known; Wait then returns at once.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait returns nil once the broker acknowledged the message (PUBACK for QoS 1, the
// message written for QoS 0). It returns ErrNotConnected or ErrConnectionLost (maybe
// wrapped) when the broker did not, or ctx's error; then the caller sends the message
// again after the next connect. It never reports success without the acknowledgement.
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish sends payload to topic with QoS 0 or 1 and returns at once with a handle;
// messages go out in the order of Publish calls. When MaxInflight messages are
// unacknowledged it waits for room (at most about WriteTimeout, after which the link
// is closed). When the client is not connected the Pending has failed already with
// ErrNotConnected. The payload must not be changed until the Pending is done.
func (c *Client) Publish(topic string, qos byte, payload []byte) *Pending {
	if qos > 1 {
		return failed(fmt.Errorf("tbmqtt: publish qos %d: only 0 and 1 are supported", qos))
	}
	if topic == "" {
		return failed(errors.New("tbmqtt: publish: empty topic"))
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	l := c.cur.Load()
	if l == nil {
		return failed(ErrNotConnected)
	}
	select {
	case <-l.lost:
		return failed(ErrNotConnected)
	default:
	}
	select {
	case l.slots <- struct{}{}:
	case <-l.lost:
		return failed(ErrNotConnected)
	}
	p := &Pending{tok: l.pc.Publish(topic, qos, false, payload), done: make(chan struct{})}
	l.queue <- p // never blocks: the queue holds at most one entry per slot
	return p
}

// link is one connection: its own paho client, window and settling goroutine.
type link struct {
	c      *Client
	pc     mqtt.Client
	slots  chan struct{} // in-flight window: one token per unsettled Pending
	queue  chan *Pending // Pendings in publish order, settled by reap
	reaped chan struct{} // closed when reap returns

	lost     chan struct{} // closed when the link is over
	lostOnce sync.Once
	lostErr  error // why; written before lost is closed

	mu      sync.Mutex
	netConn net.Conn
}

func newLink(c *Client, window int) *link {
	return &link{
		c:      c,
		slots:  make(chan struct{}, window),
		queue:  make(chan *Pending, window),
		reaped: make(chan struct{}),
		lost:   make(chan struct{}),
	}
}

// markLost ends the link for this client's purposes (first reason wins). The client
// stops being connected in the same step, so whoever sees lost closed also sees
// Connected false and a WaitConnected that waits for the next link.
func (l *link) markLost(err error) {
	l.lostOnce.Do(func() {
		l.c.upMu.Lock()
		if l.c.cur.CompareAndSwap(l, nil) {
			l.c.up = make(chan struct{})
		}
		l.lostErr = err
		close(l.lost)
		l.c.upMu.Unlock()
	})
}

// kill ends the link and closes its socket, so paho's goroutines stop too.
func (l *link) kill(err error) {
	l.markLost(err)
	l.mu.Lock()
	if l.netConn != nil {
		_ = l.netConn.Close()
	}
	l.mu.Unlock()
}

// setConn records the socket paho will use; a link killed during the dial closes it.
func (l *link) setConn(conn net.Conn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.lost:
		_ = conn.Close()
		return fmt.Errorf("connect aborted: %w", l.lostErr)
	default:
	}
	l.netConn = conn
	return nil
}

// Run connects, and reconnects with backoff whenever the link drops, until ctx is
// done; then it disconnects cleanly, waits for its goroutines and running handlers,
// and returns nil. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("tbmqtt: Run called twice")
	}
	defer c.closeHandlers()
	bo := newBackoff(c.s.MinBackoff, c.s.MaxBackoff)
	for {
		l, err := c.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d := bo.next()
			c.log.Warn("tbmqtt: connect failed", "broker", c.s.addr, "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		bo.reset()
		c.serve(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
		d := bo.next()
		c.log.Warn("tbmqtt: connection lost", "broker", c.s.addr, "err", l.lostErr, "reconnect_in", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connect makes one link: dial (TLS when configured, never plain instead), CONNECT,
// subscriptions. On success the link is current and its settling goroutine runs.
func (c *Client) connect(ctx context.Context) (*link, error) {
	l := newLink(c, c.s.MaxInflight)
	scheme := "tcp"
	if c.s.tls != nil {
		scheme = "ssl"
	}
	po := mqtt.NewClientOptions().
		AddBroker(scheme + "://" + c.s.addr).
		SetClientID(c.s.clientID).
		SetUsername(c.s.username).
		SetPassword(c.s.password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(false).
		SetKeepAlive(c.s.KeepAlive).
		SetWriteTimeout(c.s.WriteTimeout).
		SetConnectTimeout(c.s.ConnectTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { l.markLost(err) }).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			conn, err := c.dial(ctx)
			if err != nil {
				return nil, err
			}
			if err := l.setConn(conn); err != nil {
				return nil, err
			}
			return newAckConn(conn), nil
		})
	l.pc = mqtt.NewClient(po)

	tok := l.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		l.kill(ctx.Err())
		<-tok.Done() // bounded: the socket is closed and the dial's context is done
		if tok.Error() == nil {
			l.pc.Disconnect(0)
		}
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		l.kill(err) // close the socket whatever state paho left it in
		return nil, fmt.Errorf("connect to %s: %w", c.s.addr, err)
	}

	c.stateMu.Lock()
	for _, sub := range c.subs {
		if err := c.subscribe(ctx, l, sub); err != nil {
			c.stateMu.Unlock()
			l.pc.Disconnect(0)
			l.kill(err)
			return nil, err
		}
	}
	c.upMu.Lock()
	select {
	case <-l.lost: // lost while subscribing, after the last check
		c.upMu.Unlock()
		c.stateMu.Unlock()
		l.kill(l.lostErr)
		return nil, fmt.Errorf("connection to %s lost right after connect: %w", c.s.addr, l.lostErr)
	default:
	}
	c.cur.Store(l)
	close(c.up)
	c.upMu.Unlock()
	c.stateMu.Unlock()
	go c.reap(l)

	n := c.connects.Add(1)
	c.log.Info("tbmqtt: connected", "broker", c.s.addr, "client_id", c.s.clientID, "tls", c.s.tls != nil, "reconnects", n-1)
	return l, nil
}

// dial opens the socket: TLS with handshake when configured, else TCP.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.s.ConnectTimeout)
	defer cancel()
	if c.s.tls != nil {
		d := tls.Dialer{Config: c.s.tls}
		conn, err := d.DialContext(dctx, "tcp", c.s.addr)
		if err != nil {
			return nil, fmt.Errorf("tls dial %s: %w", c.s.addr, err)
		}
		return conn, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", c.s.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.s.addr, err)
	}
	return conn, nil
}

// subscribe makes one subscription on l and waits for the SUBACK.
func (c *Client) subscribe(ctx context.Context, l *link, sub subscription) error {
	tok := l.pc.Subscribe(sub.topic, sub.qos, sub.h)
	t := time.NewTimer(c.s.WriteTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-l.lost:
		return fmt.Errorf("subscribe %s: %w", sub.topic, ErrConnectionLost)
	case <-ctx.Done():
		return fmt.Errorf("subscribe %s: %w", sub.topic, ctx.Err())
	case <-t.C:
		return fmt.Errorf("subscribe %s: no SUBACK within %v", sub.topic, c.s.WriteTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribe %s: %w", sub.topic, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		if rc, ok := st.Result()[sub.topic]; ok && rc == 0x80 {
			return fmt.Errorf("subscribe %s: refused by the broker", sub.topic)
		}
	}
	return nil
}

// serve runs the OnConnect callbacks and waits until the link is lost or ctx is done,
// then takes the link down and waits for its goroutines.
func (c *Client) serve(ctx context.Context, l *link) {
	cctx, cancel := context.WithCancel(ctx)
	c.stateMu.Lock()
	callbacks := append([]func(context.Context){}, c.onConnect...)
	c.stateMu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, f := range callbacks {
			if cctx.Err() != nil {
				return
			}
			f(cctx)
		}
	})

	select {
	case <-l.lost:
	case <-ctx.Done():
	}
	cancel()

	select {
	case <-l.lost:
		l.kill(l.lostErr) // paho closed the socket already; this is a no-op then
	default:
		// Stop new publishes on this link first, then say goodbye cleanly: paho
		// writes DISCONNECT and fails the tokens still open.
		l.markLost(ErrNotConnected)
		l.pc.Disconnect(quiesce)
		l.kill(ErrNotConnected)
	}
	// A publisher that loaded l before cur was cleared holds pubMu until its
	// message is queued; after that nobody sends on l.queue.
	c.pubMu.Lock()
	close(l.queue)
	c.pubMu.Unlock()
	<-l.reaped
	wg.Wait()
}

// reap settles the link's Pendings in publish order: success only when paho's token
// completed without an error; ErrConnectionLost when the link ends first. When no
// acknowledgement arrives for WriteTimeout the link is considered dead and closed.
func (c *Client) reap(l *link) {
	defer close(l.reaped)
	guard := time.NewTimer(c.s.WriteTimeout)
	defer guard.Stop()
	for p := range l.queue {
		select {
		case <-p.tok.Done():
		default:
			// Measured from the last progress: the previous ack, or this message
			// reaching the head of the queue.
			guard.Reset(c.s.WriteTimeout)
			select {
			case <-p.tok.Done():
			case <-l.lost:
			case <-guard.C:
				c.log.Warn("tbmqtt: no acknowledgement, closing the connection", "broker", c.s.addr, "timeout", c.s.WriteTimeout)
				l.kill(errAckTimeout)
			}
		}
		select {
		case <-p.tok.Done():
			if err := p.tok.Error(); err != nil {
				p.finish(fmt.Errorf("%w: %w", ErrConnectionLost, err))
				// A failed publish on a live link means the link is broken; a new one
				// keeps the order of what follows.
				l.kill(err)
			} else {
				p.finish(nil)
			}
		default:
			p.finish(ErrConnectionLost)
		}
		<-l.slots
	}
}

// closeHandlers stops new handler calls and waits for running ones.
func (c *Client) closeHandlers() {
	c.hmu.Lock()
	c.hclosed = true
	for c.hrunning > 0 {
		c.hcond.Wait()
	}
	c.hmu.Unlock()
}
