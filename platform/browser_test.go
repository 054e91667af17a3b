package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// chromiumPath is Debian's chromium; IOTGW_CHROMIUM names another build.
func chromiumPath() string {
	if p := os.Getenv("IOTGW_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestBrowser drives the real web page in headless Chromium: a device and a
// live value published by a gateway client appear, an attribute update and an
// RPC sent from the page's forms reach the gateway, and the RPC's reply shows
// on the page. It saves a screenshot to $IOTGW_ARTIFACTS (or a temp dir).
func TestBrowser(t *testing.T) {
	exe := chromiumPath()
	if _, err := os.Stat(exe); err != nil {
		t.Skipf("no Chromium at %s (install Debian's chromium, or set IOTGW_CHROMIUM): %v", exe, err)
	}
	p := startPlatform(t, Options{})
	g, err := connectGateway(t, p.MQTTAddr(), "tok", "browser-gw")
	if err != nil {
		t.Fatal(err)
	}

	// The gateway side: answers RPCs, records attribute updates.
	var (
		mu      sync.Mutex
		updates []string
		rpcs    []string
	)
	g.c.Subscribe(TopicRPC, 1, func(c paho.Client, m paho.Message) {
		var req struct {
			Device string `json:"device"`
			Data   struct {
				ID     int             `json:"id"`
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			} `json:"data"`
		}
		if json.Unmarshal(m.Payload(), &req) != nil || req.Data.Method == "" {
			return // our own reply, echoed back
		}
		mu.Lock()
		rpcs = append(rpcs, string(m.Payload()))
		mu.Unlock()
		reply := fmt.Sprintf(`{"device":%q,"id":%d,"data":{"result":"ok:19"}}`, req.Device, req.Data.ID)
		c.Publish(TopicRPC, 1, false, reply)
	}).Wait()
	g.c.Subscribe(TopicAttributes, 1, func(_ paho.Client, m paho.Message) {
		if !downlinkAttributes(m.Payload()) {
			return // our own uplink, echoed back
		}
		mu.Lock()
		updates = append(updates, string(m.Payload()))
		mu.Unlock()
	}).Wait()
	g.publish(TopicConnect, `{"device":"SerialDevice1","type":"default"}`)
	g.publish(TopicAttributes, `{"SerialDevice1":{"SerialNumber":"2430947595"}}`)

	// A live humidity value: a new one every 100 ms until the test ends.
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			h := 45 + 5*float64(i%20)/20 + float64(i%3)
			g.c.Publish(TopicTelemetry, 1, false, fmt.Sprintf(`{"SerialDevice1":[{"ts":%d,"values":{"humidity":%.1f}}]}`,
				time.Now().UnixMilli(), h)).WaitTimeout(time.Second)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); pubWG.Wait() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	defer allocCancel()
	bctx, bcancel := chromedp.NewContext(allocCtx)
	defer bcancel()

	poll := func(what, expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Poll[string](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(10*time.Second)))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return v
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("http://"+p.HTTPAddr()+"/")); err != nil {
		t.Fatalf("open page: %v", err)
	}
	poll("the device in the list", `document.querySelector('#devices li[data-device="SerialDevice1"] .name')?.textContent`)
	poll("the device to be selected", `document.querySelector("#dev-name").textContent === "SerialDevice1" && "yes"`)
	first := poll("a humidity value", `document.querySelector('.metric[data-key="humidity"] .value')?.textContent`)
	live := poll("the value to change", fmt.Sprintf(
		`(v => v && v !== %q && v)(document.querySelector('.metric[data-key="humidity"] .value')?.textContent)`, first))
	t.Logf("live humidity on the page: %s then %s", first, live)
	poll("the client attribute", `[...document.querySelectorAll("#attrs td")].some(td => td.textContent === "2430947595") && "yes"`)

	// Shared attribute update from the form.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("attr-key"), "attr1"),
		chromedp.SendKeys(chromedp.ID("attr-value"), "25"),
		chromedp.Click(chromedp.ID("attr-send")),
	); err != nil {
		t.Fatalf("attribute form: %v", err)
	}
	poll("the attribute update status", `(s => s.startsWith("sent") && s)(document.querySelector("#attr-status").textContent)`)

	// RPC from the form; the gateway client answers it.
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("rpc-method"), "setValue"),
		chromedp.SendKeys(chromedp.ID("rpc-params"), "25"),
		chromedp.Click(chromedp.ID("rpc-send")),
	); err != nil {
		t.Fatalf("rpc form: %v", err)
	}
	reply := poll("the RPC reply", `(s => s.includes("ok:19") && s)(document.querySelector("#rpc-reply").textContent)`)
	if want := "{\n  \"result\": \"ok:19\"\n}"; reply != want {
		t.Errorf("reply on the page = %q, want %q", reply, want)
	}
	poll("the RPC in the event log", `[...document.querySelectorAll("#log li")].some(li => li.textContent.includes("rpc ←")) && "yes"`)

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("IOTGW_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "platform-browser.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))

	mu.Lock()
	defer mu.Unlock()
	if want := `{"data":{"id":1,"method":"setValue","params":25},"device":"SerialDevice1"}`; len(rpcs) != 1 || rpcs[0] != want {
		t.Errorf("gateway got RPCs %q, want [%s]", rpcs, want)
	}
	if want := `{"data":{"attr1":25},"device":"SerialDevice1"}`; len(updates) == 0 || updates[0] != want {
		t.Errorf("gateway got attribute messages %q, want first %s", updates, want)
	}
}
