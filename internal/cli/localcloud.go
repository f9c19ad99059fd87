package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/handover-dev/handover/internal/localcloud"
	"github.com/handover-dev/handover/internal/localcloud/ec2"
)

const localcloudLong = `localcloud serves an AWS-compatible endpoint on this machine, backed by real
processes and directories: EC2 (instances, launch templates, volumes,
snapshots, tags), Auto Scaling (groups, lifecycle hooks, standby), ELBv2 (real
HTTP reverse proxies), SQS, EventBridge, S3 (gofakes3), per-instance
metadata (IMDSv2) and RDS for PostgreSQL (a real PostgreSQL server per DB
instance, streaming read replicas, physical snapshots; needs Debian's
postgresql package, and a data directory the postgres user can enter when
run as root). The unmodified AWS SDKs and AWS CLI talk to it with only an
endpoint URL changed; requests are routed by the service their SigV4
signature names.

Data directory (--data-dir): every service keeps its state there, so the
cloud survives a restart; instances that were running come back as after a
reboot. Layout: ec2/ (state, volumes/vol-…/ as directories,
instances/i-…/ with console.log, user-data and volumes/<device> links),
snapshots/ (content-addressed incremental store), autoscaling/, elbv2/, sqs/,
events/, s3/, rds/ (rds.json, instances/db-…/data as PGDATA, snapshots/).

Catalog (--catalog): a JSON file mapping AMI ids to the command an instance
runs:
  {"images": {"ami-0123456789abcdef0": {"command": ["/usr/local/bin/kvstore", "--port", "8080"],
                                        "env": {"KV_LOG": "info"}, "description": "kvstore v1"}}}
An instance runs its launch template's user data as a shell script (with
HANDOVER_IMAGE_COMMAND set to the image's command), or the image's command
when there is none. Each instance gets its own loopback address
(HANDOVER_PRIVATE_IP) and metadata endpoint (AWS_EC2_METADATA_SERVICE_ENDPOINT).

Faults (admin API on the same endpoint under /_localcloud/, or
'handover localcloud fault'): throttle an API (RequestLimitExceeded /
Throttling), fail it with a 5xx, add latency; drop, duplicate, delay or
reorder events delivered through EventBridge; slow down or fail snapshots;
kill an instance's processes, mark it unhealthy, take a zone down. The
OpenSearch-compatible endpoint (service es, at http://HOST:PORT/_opensearch)
takes throttle (429 es_rejected_execution_exception), error and latency on
its actions (Bulk, Search, Count, Get, CreateIndex, ...) and, with action
BulkItem, on a share of the items of each bulk.
  GET    /_localcloud/healthz
  GET    /_localcloud/faults
  POST   /_localcloud/faults        {"service":"ec2","action":"CreateSnapshot","kind":"throttle","rate":0.5,"count":10}
  DELETE /_localcloud/faults/ID
  DELETE /_localcloud/faults
  POST   /_localcloud/instances/ID/kill        (or unhealthy)
  POST   /_localcloud/zones/ZONE/down          (or up)`

func newLocalcloud(stdout, stderr io.Writer) *cobra.Command {
	var (
		listen, dataDir, catalog, region, account, logLevel string
		zones, keys                                         []string
		logFlush                                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "localcloud",
		Short: "Serve an AWS-compatible cloud on this machine, backed by real processes",
		Long:  localcloudLong,
		Example: `  # serve on the default port with a catalog
  handover localcloud --data-dir ./.localcloud --catalog catalog.json

  # then use the AWS CLI or any SDK with the endpoint
  aws --endpoint-url http://127.0.0.1:4566 ec2 describe-availability-zones

  # only accept requests signed with these access keys
  handover localcloud --data-dir /tmp/lc --require-credentials AKIDEXAMPLE

  # throttle half of the CreateSnapshot calls of a running cloud
  handover localcloud fault add --service ec2 --action CreateSnapshot --kind throttle --rate 0.5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(stderr, logLevel)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			cat := map[string]ec2.Image{}
			if catalog != "" {
				if cat, err = ec2.LoadCatalog(catalog); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--catalog: %w", err)}
				}
			}
			abs, err := filepath.Abs(dataDir)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--data-dir %q: %w", dataDir, err)}
			}
			c, err := localcloud.New(localcloud.Config{DataDir: abs, Region: region, AccountID: account, Zones: zones, Catalog: cat, AccessKeys: keys, LogFlushInterval: logFlush, Logger: logger})
			if err != nil {
				return err
			}
			defer c.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--listen %s: %w (is another local cloud running? pick another address)", listen, err)}
			}
			srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(stdout, "localcloud: serving http://%s (data in %s); stop with Ctrl-C\n", ln.Addr(), abs)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case <-cmd.Context().Done():
				shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = srv.Shutdown(shutdown)
				fmt.Fprintln(stdout, "localcloud: stopped")
				return nil
			case err := <-errc:
				return fmt.Errorf("serving: %w", err)
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", envOr("HANDOVER_LOCALCLOUD_LISTEN", "127.0.0.1:4566"), "address to serve on (env HANDOVER_LOCALCLOUD_LISTEN)")
	fl.StringVar(&dataDir, "data-dir", envOr("HANDOVER_LOCALCLOUD_DATA", ".localcloud"), "where the cloud keeps its state (env HANDOVER_LOCALCLOUD_DATA)")
	fl.StringVar(&catalog, "catalog", os.Getenv("HANDOVER_LOCALCLOUD_CATALOG"), "JSON file mapping AMI ids to commands (env HANDOVER_LOCALCLOUD_CATALOG)")
	fl.StringVar(&region, "region", "us-east-1", "region the endpoint serves")
	fl.StringVar(&account, "account", "000000000000", "account id of every resource (12 digits)")
	fl.StringSliceVar(&zones, "zones", nil, "availability zones (default REGIONa,REGIONb,REGIONc)")
	fl.StringSliceVar(&keys, "require-credentials", nil, "accept only requests signed with these access key ids")
	fl.DurationVar(&logFlush, "log-flush-interval", 0, "how often load balancers write access logs to S3 (default 5m, as on AWS)")
	fl.StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error, off")
	cmd.AddCommand(newFault(stdout))
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newFault(stdout io.Writer) *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Add, list and remove faults of a running local cloud",
		Example: `  handover localcloud fault add --service ec2 --action CreateSnapshot --kind throttle --rate 0.5
  handover localcloud fault add --service ec2 --kind latency --delay 2s --count 5
  handover localcloud fault add --service events --action "EBS Snapshot Notification" --kind drop
  handover localcloud fault list --output json
  handover localcloud fault rm f-1
  handover localcloud fault clear
  handover localcloud fault add --service ec2 --kind slow-snapshot --delay 30s
  handover localcloud fault add --service es --action BulkItem --kind throttle --rate 0.3
  handover localcloud fault kill-instance i-0123456789abcdef0
  handover localcloud fault zone-down us-east-1a`,
	}
	cmd.PersistentFlags().StringVar(&endpoint, "endpoint-url", envOr("HANDOVER_ENDPOINT_URL", "http://127.0.0.1:4566"), "the local cloud's endpoint (env HANDOVER_ENDPOINT_URL)")

	var req localcloud.RuleRequest
	out := output("text")
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a fault rule",
		Example: `  handover localcloud fault add --service ec2 --action CreateSnapshot --kind throttle --rate 0.5
  handover localcloud fault add --service events --action "EC2 Instance-launch Lifecycle Action" --kind drop --count 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, _ := json.Marshal(req)
			var rule map[string]any
			if err := adminCall(cmd.Context(), http.MethodPost, endpoint, "faults", body, &rule); err != nil {
				return err
			}
			if out == "json" {
				return json.NewEncoder(stdout).Encode(rule)
			}
			fmt.Fprintf(stdout, "added %v\n", rule["id"])
			return nil
		},
	}
	add.Flags().StringVar(&req.Service, "service", "", "ec2, autoscaling, elasticloadbalancing, sqs, s3, rds, es (OpenSearch) — or events for event faults")
	add.Flags().StringVar(&req.Action, "action", "", "API action (CreateSnapshot) or, for events, the detail-type; empty: all")
	add.Flags().StringVar(&req.Kind, "kind", "", "throttle, error, latency, slow-snapshot, fail-snapshot (API) or drop, duplicate, delay, reorder (events)")
	add.Flags().Float64Var(&req.Rate, "rate", 0, "chance a matching call is hit (default 1)")
	add.Flags().IntVar(&req.Count, "count", 0, "hit at most this many calls (0: no limit)")
	add.Flags().StringVar(&req.Delay, "delay", "", "latency or event delay, e.g. 2s")
	add.Flags().Var(&out, "output", "text or json")

	listOut := output("text")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List fault rules",
		Example: "  handover localcloud fault list --endpoint-url http://127.0.0.1:4566",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rules []map[string]any
			if err := adminCall(cmd.Context(), http.MethodGet, endpoint, "faults", nil, &rules); err != nil {
				return err
			}
			if listOut == "json" {
				return json.NewEncoder(stdout).Encode(rules)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSERVICE\tACTION\tKIND\tRATE\tCOUNT\tHITS")
			for _, r := range rules {
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\n", r["id"], r["service"], r["action"], r["kind"], r["rate"], r["count"], r["hits"])
			}
			return tw.Flush()
		},
	}
	list.Flags().Var(&listOut, "output", "text or json")
	rm := &cobra.Command{
		Use:     "rm ID",
		Short:   "Remove a fault rule",
		Example: "  handover localcloud fault rm f-1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return adminCall(cmd.Context(), http.MethodDelete, endpoint, "faults/"+args[0], nil, nil)
		},
	}
	clear := &cobra.Command{
		Use:     "clear",
		Short:   "Remove every fault rule",
		Example: "  handover localcloud fault clear",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return adminCall(cmd.Context(), http.MethodDelete, endpoint, "faults", nil, nil)
		},
	}
	post := func(use, short, path string) *cobra.Command {
		return &cobra.Command{
			Use:     use,
			Short:   short,
			Example: "  handover localcloud fault " + strings.Replace(strings.Replace(use, "ID", "i-0123456789abcdef0", 1), "ZONE", "us-east-1a", 1),
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return adminCall(cmd.Context(), http.MethodPost, endpoint, strings.ReplaceAll(path, "{}", args[0]), nil, nil)
			},
		}
	}
	cmd.AddCommand(add, list, rm, clear,
		post("kill-instance ID", "Kill an instance's processes (a crash: its EC2 state stays running)", "instances/{}/kill"),
		post("unhealthy ID", "Mark an instance Unhealthy in its Auto Scaling group", "instances/{}/unhealthy"),
		post("zone-down ZONE", "Take a zone down: its instances freeze, nothing new starts there", "zones/{}/down"),
		post("zone-up ZONE", "Bring a zone back", "zones/{}/up"))
	return cmd
}

// adminCall calls the local cloud's admin API and decodes the answer.
func adminCall(ctx context.Context, method, endpoint, path string, body []byte, into any) error {
	url := strings.TrimSuffix(endpoint, "/") + localcloud.AdminPrefix + path
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--endpoint-url %q: %w", endpoint, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the local cloud at %s: %w (is `handover localcloud` running there?)", endpoint, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &exitError{code: 1, err: errors.New(e.Error)}
		}
		return &exitError{code: 1, err: fmt.Errorf("%s %s: %s", method, url, resp.Status)}
	}
	if into != nil && len(data) > 0 {
		if err := json.Unmarshal(data, into); err != nil {
			return fmt.Errorf("reading the answer of %s: %w", url, err)
		}
	}
	return nil
}
