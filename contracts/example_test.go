package contracts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simmatch/simmatch/contracts"
)

// ExampleClient_Match shows another Go service ranking products through the
// simmatch processors over NATS. To stay self-contained it starts an
// in-process NATS server and a stand-in processor; a real service only
// connects to its NATS URL and calls Match.
func ExampleClient_Match() {
	// --- stand-in for the deployment: NATS and one processor ---------------
	ns, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats not ready")
	}
	pc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	_, err = pc.QueueSubscribe(contracts.SubjectSimilarity, contracts.DefaultQueueGroup, func(m *nats.Msg) {
		req, err := contracts.DecodeRequest(m.Data, contracts.DefaultLimits)
		if err != nil {
			e := contracts.AsError(err)
			out := nats.NewMsg(m.Reply)
			out.Header.Set(contracts.HeaderErrorCode, string(e.Code))
			out.Header.Set(contracts.HeaderError, e.Message)
			out.Data = e.Marshal()
			_ = m.RespondMsg(out)
			return
		}
		// A real processor embeds the texts; these scores are made up.
		scores := []float64{0.1875, 0.6125}
		res := contracts.Result{Query: req.Query[0]}
		for _, i := range []int{1, 0} {
			res.Matches = append(res.Matches, contracts.Match{Index: i, Description: req.ProductDescriptions[i], Score: scores[i]})
		}
		data, _ := json.Marshal(contracts.Response{Results: []contracts.Result{res}, RequestID: req.RequestID,
			Model: contracts.ModelInfo{Name: "sentence-transformers/all-MiniLM-L6-v2", Version: "759c3cd2", Dimensions: 384}})
		_ = m.Respond(data)
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := pc.Flush(); err != nil {
		log.Fatal(err)
	}

	// --- the calling service -----------------------------------------------
	nc, err := nats.Connect("", nats.InProcessServer(ns)) // nats.Connect("nats://nats:4222", contracts.ReconnectOptions()...) in production
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	client, err := contracts.NewClient(nc)
	if err != nil {
		log.Fatal(err)
	}

	// The deadline travels to the processor, which gives up when it passes.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := client.Match(ctx, &contracts.Request{
		Query: contracts.Queries{"What can I use to cut wood?"},
		ProductDescriptions: []string{
			"Heavy-duty claw hammer with a non-slip grip handle.",
			"High-performance circular saw with laser guide.",
		},
		RequestID: "order-42",
	})
	switch {
	case errors.Is(err, contracts.ErrNoProcessor), errors.Is(err, contracts.ErrOverloaded), errors.Is(err, contracts.ErrTimeout):
		log.Printf("similarity unavailable, retry later: %v", err) // Code.Retryable() is true for these
		return
	case err != nil:
		log.Printf("similarity failed (%s): %v", contracts.AsError(err).Code, err)
		return
	}
	for _, r := range resp.Results {
		fmt.Println(r.Query)
		for _, m := range r.Matches {
			fmt.Printf("  %.2f  #%d %s\n", m.Score, m.Index, m.Description)
		}
	}
	fmt.Println("model:", resp.Model.Name, "request:", resp.RequestID)

	// Invalid input comes back as an *Error naming the field and the limit.
	_, err = client.Match(ctx, &contracts.Request{Query: contracts.Queries{"saw"}, ProductDescriptions: []string{" "}})
	var e *contracts.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Field, e.Code.HTTPStatus())
	}
	// Output:
	// What can I use to cut wood?
	//   0.61  #1 High-performance circular saw with laser guide.
	//   0.19  #0 Heavy-duty claw hammer with a non-slip grip handle.
	// model: sentence-transformers/all-MiniLM-L6-v2 request: order-42
	// invalid_request product_descriptions[0] 422
}
