// Examples for the package documentation; compiled by go vet and go test.
// Those with an Output comment run; the others are not run (they need an
// mcfault at 127.0.0.1:8080).

package mcfault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"testing"
	"time"

	mcfault "github.com/mcfault/mcfault/clients/go"
)

func ExampleNew() {
	client := mcfault.New("http://127.0.0.1:8080", mcfault.WithTimeout(5*time.Second))
	h, err := client.Health(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.OK)
}

func ExampleClient_Fault() {
	client := mcfault.New("http://127.0.0.1:8080")
	ctx := context.Background()
	undo, err := client.Fault(ctx, mcfault.Rule{Key: []string{"session:*"}, Action: mcfault.ActionMiss})
	if err != nil {
		log.Fatal(err)
	}
	defer undo()
	// ... every read of a session:* key misses until undo runs.
}

func ExampleWithFault() {
	client := mcfault.New("http://127.0.0.1:8080")
	_ = func(t *testing.T) {
		mcfault.WithFault(t, client, mcfault.Rule{Command: []string{"get", "gets"}, Action: mcfault.ActionDelay,
			Delay: 500 * time.Millisecond})
		// ... the rest of the test sees every read take 500 ms longer.
	}
}

func ExampleClient_SetRules() {
	client := mcfault.New("http://127.0.0.1:8080")
	_, err := client.SetRules(context.Background(), mcfault.YAML(`
rules:
  - name: oom
    command: [set, ms]
    key: "session:*"
    action: error
    message: SERVER_ERROR out of memory storing object
`))
	var apiErr *mcfault.APIError
	if errors.As(err, &apiErr) {
		for _, p := range apiErr.Problems { // body:LINE:COL: ...
			fmt.Println(p)
		}
	}
}

func ExampleClient_Proxy() {
	client := mcfault.New("http://127.0.0.1:8080")
	sessions := client.Proxy("sessions") // ?proxy=sessions
	if _, err := sessions.AddRules(context.Background(), mcfault.Rule{Action: mcfault.ActionDrop}); errors.Is(err, mcfault.ErrNotFound) {
		fmt.Println("no proxy named sessions")
	}
}

// The newer actions, targeting and connect rules, for one test each.
func ExampleRule() {
	client := mcfault.New("http://127.0.0.1:8080")
	_ = func(t *testing.T) {
		// Reads of big values come at 10 KiB/s, in pieces of 1 to 512 bytes.
		mcfault.WithFault(t, client,
			mcfault.Rule{Command: []string{"get", "gets"}, Key: []string{"catalog:*"}, Action: mcfault.ActionThrottle, Rate: 10 << 10},
			mcfault.Rule{Command: []string{"get", "gets"}, Key: []string{"page:*"}, Action: mcfault.ActionSlice,
				Size: mcfault.ByteRange{Min: 1, Max: 512}, Interval: 5 * time.Millisecond})
		// Half of a reply, then a reset; for clients on 10.0.0.0/8 only.
		mcfault.WithFault(t, client, mcfault.Rule{Command: []string{"get", "gets"}, Action: mcfault.ActionTruncate,
			Keep: mcfault.KeepPercent(50), Close: mcfault.CloseReset, Client: []string{"10.0.0.0/8"}})
		// Writes of 1 MiB and more store a value with 2 bits flipped.
		mcfault.WithFault(t, client, mcfault.Rule{Command: []string{"set"}, Action: mcfault.ActionCorrupt, Flips: 2,
			DataSize: &mcfault.ByteRange{Min: 1 << 20, Max: mcfault.NoLimit}})
		// Sessions vanish from memcached as they are read, for 10 s of every minute.
		mcfault.WithFault(t, client, mcfault.Rule{Command: []string{"get", "gets"}, Key: []string{"session:*"},
			Action: mcfault.ActionEvict, Schedule: &mcfault.Schedule{Duration: 10 * time.Second, Every: time.Minute}})
		// One new connection in ten is refused as a full memcached refuses it.
		mcfault.WithFault(t, client, mcfault.Rule{Command: []string{mcfault.Connect}, Action: mcfault.ActionError,
			Connections: 0.1})
	}
}

// A rule's JSON is the rule file's form, as POST /rules takes it.
func ExampleRule_MarshalJSON() {
	b, err := json.Marshal(mcfault.Rule{Name: "half", Command: []string{"get"}, Action: mcfault.ActionTruncate,
		Keep: mcfault.KeepPercent(50), Close: mcfault.CloseReset, DataSize: &mcfault.ByteRange{Max: 4096}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output: {"name":"half","command":["get"],"action":"truncate","close":"reset","keep":"50%","min_size":0,"max_size":4096}
}
