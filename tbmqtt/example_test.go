package tbmqtt_test

import (
	"context"
	"log"
	"time"

	"github.com/iotgw/iotgw/tbmqtt"
)

// Example shows the gateway's use: subscriptions and OnConnect before Run, publishes
// that are resent when their Pending fails.
func Example() {
	c, err := tbmqtt.New(tbmqtt.Options{
		Host:     "thingsboard.example",
		Security: tbmqtt.Security{Type: tbmqtt.SecurityAccessToken, AccessToken: "GATEWAY_TOKEN"},
	})
	if err != nil {
		log.Fatal(err)
	}
	c.Subscribe(tbmqtt.TopicRPC, 1, func(topic string, payload []byte) {
		// Hand the request to a worker; do not block here.
	})
	c.OnConnect(func(ctx context.Context) {
		// Announce known devices again after every connect.
		_ = c.Publish(tbmqtt.TopicConnect, 1, tbmqtt.ConnectPayload("Sensor A", "thermometer")).Wait(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx) // returns after a clean disconnect once ctx is done
	}()
	defer func() { cancel(); <-done }()

	if err := c.WaitConnected(ctx); err != nil {
		return
	}
	p := c.Publish(tbmqtt.TopicTelemetry, 1, []byte(`{"Sensor A":[{"ts":1700000000000,"values":{"t":21.5}}]}`))
	if err := p.Wait(ctx); err != nil {
		// Not acknowledged: keep the record in storage and send it again later.
		log.Print(err)
	}
}
