package bench

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// event is the shape of the JSON-like records: an application event as a
// service would log it, with a few nested objects and a varying number of
// line items, so sizes vary from about 300 B to 1 KiB.
type event struct {
	Time    time.Time `json:"ts"`
	Level   string    `json:"level"`
	Service string    `json:"service"`
	Host    string    `json:"host"`
	TraceID string    `json:"trace_id"`
	UserID  int       `json:"user_id"`
	Event   string    `json:"event"`
	Order   *order    `json:"order,omitempty"`
	HTTP    httpInfo  `json:"http"`
	Tags    []string  `json:"tags,omitempty"`
	Message string    `json:"msg,omitempty"`
}

type order struct {
	ID       string  `json:"id"`
	Currency string  `json:"currency"`
	Total    float64 `json:"total"`
	Items    []item  `json:"items"`
}

type item struct {
	SKU   string  `json:"sku"`
	Name  string  `json:"name"`
	Qty   int     `json:"qty"`
	Price float64 `json:"price"`
}

type httpInfo struct {
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	UserAgent  string  `json:"user_agent"`
}

var (
	levels    = []string{"info", "info", "info", "info", "warn", "error", "debug"}
	services  = []string{"checkout", "catalog", "accounts", "payments", "shipping", "search"}
	events    = []string{"order.created", "order.paid", "order.shipped", "cart.updated", "user.login", "search.query", "payment.refused"}
	methods   = []string{"GET", "GET", "POST", "PUT", "DELETE"}
	currency  = []string{"EUR", "USD", "GBP", "JPY"}
	products  = []string{"USB-C cable 2m", "Espresso beans 1kg", "Running shoes", "Desk lamp", "Notebook A5 dotted", "Wireless mouse", "Wool socks (3 pairs)", "Chef's knife 20cm"}
	tags      = []string{"mobile", "web", "promo", "returning", "first-order", "gift", "express"}
	agents    = []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "okhttp/4.12.0", "curl/8.11.0"}
	messages  = []string{"", "", "", "retrying after timeout from upstream", "cache miss, loaded from database", "card declined by issuer: insufficient funds"}
	pathRoots = []string{"/api/v1/orders", "/api/v1/users", "/api/v2/search", "/api/v1/cart", "/api/v1/payments"}
)

// JSONRecords returns n JSON-encoded events drawn from seed: the same seed
// gives the same records. Field names and values repeat across records as
// in real event logs, while ids, trace ids, amounts and timestamps vary.
func JSONRecords(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	t := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	recs := make([][]byte, n)
	trace := make([]byte, 16)
	for i := range recs {
		t = t.Add(time.Duration(r.IntN(5000)) * time.Microsecond)
		for j := range trace {
			trace[j] = byte(r.Uint32())
		}
		e := event{
			Time: t, Level: pick(levels), Service: pick(services),
			Host:    fmt.Sprintf("%s-%02d", pick(services), r.IntN(24)),
			TraceID: hex.EncodeToString(trace), UserID: 10000 + r.IntN(90000),
			Event: pick(events), Message: pick(messages),
			HTTP: httpInfo{
				Method: pick(methods), Path: fmt.Sprintf("%s/%d", pick(pathRoots), r.IntN(1000000)),
				Status:     []int{200, 200, 200, 201, 204, 400, 404, 500}[r.IntN(8)],
				DurationMS: float64(r.IntN(200000)) / 1000, UserAgent: pick(agents),
			},
		}
		for range r.IntN(3) {
			e.Tags = append(e.Tags, pick(tags))
		}
		if r.IntN(2) == 0 {
			e.Order = randomOrder(r, pick)
		}
		b, err := json.Marshal(e)
		if err != nil {
			panic(err) // the types above always marshal
		}
		recs[i] = b
	}
	return recs
}

func randomOrder(r *rand.Rand, pick func([]string) string) *order {
	o := &order{ID: fmt.Sprintf("ord_%08x", r.Uint32()), Currency: pick(currency)}
	for range 1 + r.IntN(6) {
		it := item{SKU: fmt.Sprintf("SKU-%05d", r.IntN(100000)), Name: pick(products),
			Qty: 1 + r.IntN(4), Price: float64(100+r.IntN(20000)) / 100}
		o.Items = append(o.Items, it)
		o.Total += float64(it.Qty) * it.Price
	}
	o.Total = float64(int(o.Total*100)) / 100
	return o
}
