// promcheck validates hookd's Prometheus rules and Grafana dashboard with Prometheus' own parsers:
// rulefmt (the rule-file loader `promtool check rules` uses: YAML structure, PromQL of every expr, the Go
// templates of labels and annotations) and the PromQL parser for every dashboard target (Grafana's
// $__rate_interval and $variables are substituted first).
//
//	go run ./tests/deploy/promcheck deploy/prometheus/alerts.yaml deploy/grafana/hookd-dashboard.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func checkDashboard(path string) (int, []string) {
	var d struct {
		Panels []panel `json:"panels"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, []string{err.Error()}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, []string{path + ": " + err.Error()}
	}
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$namespace", ".*")
	var errs []string
	n := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				n++
				if _, err := parser.ParseExpr(grafana.Replace(t.Expr)); err != nil {
					errs = append(errs, fmt.Sprintf("%s: panel %q: %v", path, p.Title, err))
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return n, errs
}

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		if strings.HasSuffix(path, ".json") {
			n, errs := checkDashboard(path)
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, e)
			}
			failed = failed || len(errs) > 0 || n == 0
			fmt.Printf("%s: %d PromQL queries, %d errors\n", path, n, len(errs))
			continue
		}
		groups, errs := rulefmt.ParseFile(path, false)
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, e)
		}
		rules := 0
		if groups != nil {
			for _, g := range groups.Groups {
				rules += len(g.Rules)
			}
		}
		failed = failed || len(errs) > 0 || rules == 0
		fmt.Printf("%s: %d rules, %d errors\n", path, rules, len(errs))
	}
	if failed {
		os.Exit(1)
	}
}
