package ledgertest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/handover-dev/handover/internal/ledger"
)

// fullRelease returns a release with every field set, so a backend that
// drops one fails the round trip.
func fullRelease(channel, name string) *ledger.Release {
	return &ledger.Release{
		ID:           ledger.ReleaseID(channel, name),
		Channel:      channel,
		Name:         name,
		State:        ledger.ReleasePublished,
		SourceVolume: "vol-0src",
		SnapshotID:   "snap-0rel",
		ManifestHash: "sha256:9f86d081884c7d65",
		Files:        42,
		Bytes:        1 << 20,
		Publisher:    "publish v7 on host-a pid 31 — ünïcode",
		Error:        "an earlier attempt's error",
		CreatedAt:    base,
		PublishedAt:  base.Add(3*time.Second + 250*time.Microsecond),
	}
}

func fullChannel(id string) *ledger.Channel {
	return &ledger.Channel{ID: id, Latest: "v7", LatestSnapshot: "snap-0rel", Previous: "v6", UpdatedAt: base.Add(time.Minute)}
}

func normTimes[T any](v *T) *T {
	c := *v
	rv := reflect.ValueOf(&c).Elem()
	for i := range rv.NumField() {
		if f, ok := rv.Field(i).Interface().(time.Time); ok {
			rv.Field(i).Set(reflect.ValueOf(normTime(f)))
		}
	}
	return &c
}

func sameValue[T any](t *testing.T, what string, got, want *T) {
	t.Helper()
	if g, w := normTimes(got), normTimes(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

func testReleases(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	t.Run("FixtureComplete", func(t *testing.T) {
		checkAllSet(t, fullRelease("web", "v1"), "Version")
		checkAllSet(t, fullChannel("web"), "Version")
	})

	t.Run("RoundTripAndCAS", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		r := fullRelease("web", "v1")
		must(t, "create", l.CreateRelease(ctx, r))
		if r.Version != 1 {
			t.Fatalf("after create Version = %d, want 1", r.Version)
		}
		wantErr(t, "create again", l.CreateRelease(ctx, fullRelease("web", "v1")), ledger.ErrExists)
		got, err := l.GetRelease(ctx, r.ID)
		must(t, "get", err)
		sameValue(t, "read back", got, r)

		stale := got.Clone()
		got.State = ledger.ReleaseDeleted
		must(t, "save", l.SaveRelease(ctx, got))
		stale.Error = "lost race"
		wantErr(t, "stale save", l.SaveRelease(ctx, stale), ledger.ErrConflict)
		again, err := l.GetRelease(ctx, r.ID)
		must(t, "get after save", err)
		sameValue(t, "after rejected save", again, got)
		_, err = l.GetRelease(ctx, "web/absent")
		wantErr(t, "get absent", err, ledger.ErrNotFound)
	})

	t.Run("ListByChannel", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		for i, rc := range []struct{ channel, name string }{{"web", "v2"}, {"api", "v1"}, {"web", "v1"}, {"web", "v3"}} {
			r := fullRelease(rc.channel, rc.name)
			// Created out of name order: listing is by creation time.
			r.CreatedAt = base.Add(time.Duration([]int{2, 0, 1, 3}[i]) * time.Second)
			must(t, "create "+r.ID, l.CreateRelease(ctx, r))
		}
		names := func(rs []*ledger.Release) []string {
			out := []string{}
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		web, err := l.ListReleases(ctx, "web")
		must(t, "list web", err)
		if got, want := names(web), []string{"web/v1", "web/v2", "web/v3"}; !slices.Equal(got, want) {
			t.Errorf("ListReleases(web) = %q, want %q", got, want)
		}
		all, err := l.ListReleases(ctx, "")
		must(t, "list all", err)
		if got, want := names(all), []string{"api/v1", "web/v1", "web/v2", "web/v3"}; !slices.Equal(got, want) {
			t.Errorf("ListReleases() = %q, want %q", got, want)
		}
		none, err := l.ListReleases(ctx, "we")
		must(t, "list we", err)
		if len(none) != 0 {
			t.Errorf("ListReleases(we) = %q, want none: the channel key is exact", names(none))
		}
	})

	t.Run("Channels", func(t *testing.T) {
		l, ctx := open(t), t.Context()
		c := fullChannel("web")
		must(t, "create", l.SaveChannel(ctx, c))
		if c.Version != 1 {
			t.Fatalf("after create Version = %d, want 1", c.Version)
		}
		wantErr(t, "create again", l.SaveChannel(ctx, fullChannel("web")), ledger.ErrConflict)
		got, err := l.GetChannel(ctx, "web")
		must(t, "get", err)
		sameValue(t, "read back", got, c)
		stale := got.Clone()
		got.Latest = "v8"
		must(t, "save", l.SaveChannel(ctx, got))
		stale.Latest = "v6"
		wantErr(t, "stale save", l.SaveChannel(ctx, stale), ledger.ErrConflict)
		absent := fullChannel("absent")
		absent.Version = 3
		wantErr(t, "save absent", l.SaveChannel(ctx, absent), ledger.ErrNotFound)
		must(t, "create api", l.SaveChannel(ctx, fullChannel("api")))
		list, err := l.ListChannels(ctx)
		must(t, "list", err)
		if len(list) != 2 || list[0].ID != "api" || list[1].ID != "web" || list[1].Latest != "v8" {
			t.Errorf("ListChannels = %+v, want api then web at v8", list)
		}
	})
}
