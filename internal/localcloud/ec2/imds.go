package ec2

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Each instance has its own instance-metadata endpoint on a free loopback
// port, speaking IMDSv2: a token from PUT /latest/api/token, then GETs that
// carry it. Its URL is in the instance's AWS_EC2_METADATA_SERVICE_ENDPOINT,
// where the SDKs look for it.

const (
	imdsTokenHeader    = "X-Aws-Ec2-Metadata-Token"
	imdsTTLHeader      = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsMaxTTL         = 21600
	imdsMaxTokens      = 1024
	imdsRootDeviceName = "/dev/xvda"
)

type imdsServer struct {
	s   *Service
	id  string
	url string
	srv *http.Server

	mu     sync.Mutex
	tokens map[string]time.Time // token → expiry
}

func (s *Service) startIMDS(instanceID string) (*imdsServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the metadata endpoint of %s: %w", instanceID, err)
	}
	m := &imdsServer{s: s, id: instanceID, url: "http://" + ln.Addr().String(), tokens: map[string]time.Time{}}
	m.srv = &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

func (m *imdsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		_ = m.srv.Close()
	}
}

func (m *imdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		m.token(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !m.valid(r.Header.Get(imdsTokenHeader)) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	body, ok := m.answer(r.URL.Path)
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if strings.HasPrefix(body, "{") {
		w.Header().Set("Content-Type", "application/json")
	}
	_, _ = w.Write([]byte(body))
}

func (m *imdsServer) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > imdsMaxTTL {
		http.Error(w, "Bad Request: "+imdsTTLHeader+" must be 1 to 21600", http.StatusBadRequest)
		return
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := m.s.clk.Now()
	m.mu.Lock()
	for t, exp := range m.tokens {
		if !now.Before(exp) {
			delete(m.tokens, t)
		}
	}
	if len(m.tokens) >= imdsMaxTokens {
		for t := range m.tokens { // forget an arbitrary one
			delete(m.tokens, t)
			break
		}
	}
	m.tokens[tok] = now.Add(time.Duration(ttl) * time.Second)
	m.mu.Unlock()
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

func (m *imdsServer) valid(tok string) bool {
	if tok == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.tokens[tok]
	return ok && m.s.clk.Now().Before(exp)
}

// identityDocument is /latest/dynamic/instance-identity/document.
type identityDocument struct {
	AccountID        string    `json:"accountId"`
	Architecture     string    `json:"architecture"`
	AvailabilityZone string    `json:"availabilityZone"`
	ImageID          string    `json:"imageId"`
	InstanceID       string    `json:"instanceId"`
	InstanceType     string    `json:"instanceType"`
	PendingTime      time.Time `json:"pendingTime"`
	PrivateIP        string    `json:"privateIp"`
	Region           string    `json:"region"`
	Version          string    `json:"version"`
}

// answer returns the metadata at p, read from the instance's current state.
func (m *imdsServer) answer(p string) (string, bool) {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.st.Instances[m.id]
	if in == nil {
		return "", false
	}
	// ebsN, in attachment order, for the volumes attached now.
	var devices []string
	for _, v := range s.st.Volumes {
		if a := v.Attachment; a != nil && a.InstanceID == in.ID {
			devices = append(devices, a.AttachTime.Format(time.RFC3339Nano)+"\x00"+v.ID+"\x00"+a.Device)
		}
	}
	slices.Sort(devices)
	bdm := map[string]string{"ami": imdsRootDeviceName, "root": imdsRootDeviceName}
	bdmKeys := []string{"ami"}
	for i, d := range devices {
		k := "ebs" + strconv.Itoa(i+1)
		bdm[k] = strings.TrimPrefix(d[strings.LastIndexByte(d, 0)+1:], "/dev/")
		bdmKeys = append(bdmKeys, k)
	}
	bdmKeys = append(bdmKeys, "root")
	hostname := "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal"
	leaves := map[string]string{
		"ami-id":                         in.ImageID,
		"ami-launch-index":               strconv.Itoa(in.LaunchIndex),
		"hostname":                       hostname,
		"instance-id":                    in.ID,
		"instance-type":                  in.InstanceType,
		"local-hostname":                 hostname,
		"local-ipv4":                     in.PrivateIP,
		"reservation-id":                 in.ReservationID,
		"placement/availability-zone":    in.Zone,
		"placement/availability-zone-id": s.zoneID(in.Zone),
		"placement/region":               s.cfg.Region,
	}
	for k, v := range bdm {
		leaves["block-device-mapping/"+k] = v
	}
	dirs := map[string][]string{
		"":                      {"ami-id", "ami-launch-index", "block-device-mapping/", "hostname", "instance-id", "instance-type", "local-hostname", "local-ipv4", "placement/", "reservation-id"},
		"placement/":            {"availability-zone", "availability-zone-id", "region"},
		"block-device-mapping/": bdmKeys,
	}
	switch {
	case p == "/latest/user-data":
		if len(in.UserData) == 0 {
			return "", false
		}
		return string(in.UserData), true
	case p == "/latest/dynamic/instance-identity/document":
		b, _ := json.MarshalIndent(identityDocument{
			AccountID: s.cfg.AccountID, Architecture: "x86_64", AvailabilityZone: in.Zone,
			ImageID: in.ImageID, InstanceID: in.ID, InstanceType: in.InstanceType,
			PendingTime: in.LaunchTime.UTC(), PrivateIP: in.PrivateIP, Region: s.cfg.Region, Version: "2017-09-30",
		}, "", "  ")
		return string(b), true
	case p == "/latest/dynamic/" || p == "/latest/dynamic":
		return "instance-identity/", true
	case p == "/latest/dynamic/instance-identity/" || p == "/latest/dynamic/instance-identity":
		return "document", true
	case p == "/latest/" || p == "/latest":
		return "dynamic\nmeta-data\nuser-data", true
	}
	rest, ok := strings.CutPrefix(p, "/latest/meta-data")
	if !ok {
		return "", false
	}
	rest = strings.TrimPrefix(rest, "/")
	if v, ok := leaves[rest]; ok {
		return v, true
	}
	dir := rest
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	if entries, ok := dirs[dir]; ok {
		return strings.Join(entries, "\n"), true
	}
	return "", false
}
