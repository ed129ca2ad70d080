// Examples for the package documentation; compiled by go vet and go test,
// not run (they need an mcfault at 127.0.0.1:8080).

package mcfault_test

import (
	"context"
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
