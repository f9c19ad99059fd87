package elbv2

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

func TestTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()))
	ctx := context.Background()
	st := e.newStack(t, "tagged")
	arns := []string{st.lbARN, st.tgARN, st.listenerARN}

	read := func(arn string) map[string]string {
		t.Helper()
		out, err := e.client.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{arn}})
		if err != nil {
			t.Fatalf("DescribeTags %s: %v", arn, err)
		}
		m := map[string]string{}
		for _, d := range out.TagDescriptions {
			if aws.ToString(d.ResourceArn) != arn {
				t.Fatalf("DescribeTags answered for %s, asked %s", aws.ToString(d.ResourceArn), arn)
			}
			for _, tg := range d.Tags {
				m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
		}
		return m
	}

	if _, err := e.client.AddTags(ctx, &elb.AddTagsInput{ResourceArns: arns, Tags: []types.Tag{
		{Key: aws.String("handover:environment"), Value: aws.String("staging")}, {Key: aws.String("team"), Value: aws.String("a")}}}); err != nil {
		t.Fatalf("AddTags: %v", err)
	}
	if _, err := e.client.AddTags(ctx, &elb.AddTagsInput{ResourceArns: arns[:1], Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("b")}}}); err != nil {
		t.Fatalf("AddTags overwriting: %v", err)
	}
	want := map[string]string{"handover:environment": "staging", "team": "b"}
	if got := read(st.lbARN); !maps.Equal(got, want) {
		t.Errorf("load balancer tags %v, want %v", got, want)
	}
	for _, arn := range arns[1:] {
		if got := read(arn); got["handover:environment"] != "staging" || got["team"] != "a" {
			t.Errorf("%s tags %v", arn, got)
		}
	}
	if _, err := e.client.RemoveTags(ctx, &elb.RemoveTagsInput{ResourceArns: arns, TagKeys: []string{"team"}}); err != nil {
		t.Fatalf("RemoveTags: %v", err)
	}
	if got := read(st.tgARN); !maps.Equal(got, map[string]string{"handover:environment": "staging"}) {
		t.Errorf("after RemoveTags: %v", got)
	}

	// Created with tags, a listener keeps them.
	tg2, err := e.client.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("tagged-2"), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(8080)})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := e.client.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(st.lbARN), Protocol: types.ProtocolEnumHttp, Port: aws.Int32(81),
		DefaultActions: []types.Action{{Type: types.ActionTypeEnumForward, TargetGroupArn: tg2.TargetGroups[0].TargetGroupArn}},
		Tags:           []types.Tag{{Key: aws.String("handover:entry"), Value: aws.String("true")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(*l2.Listeners[0].ListenerArn); got["handover:entry"] != "true" {
		t.Errorf("listener created with tags: %v", got)
	}

	missingLB := st.lbARN[:len(st.lbARN)-4] + "0000"
	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf("%s-%d", st.lbARN, i)
	}
	for _, tt := range []struct {
		name string
		call func() error
		code string
	}{
		{"unknown load balancer fails the whole call", func() error {
			_, err := e.client.AddTags(ctx, &elb.AddTagsInput{ResourceArns: []string{st.tgARN, missingLB}, Tags: []types.Tag{{Key: aws.String("x"), Value: aws.String("1")}}})
			return err
		}, "LoadBalancerNotFound"},
		{"unknown target group", func() error {
			_, err := e.client.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{st.tgARN + "x"}})
			return err
		}, "TargetGroupNotFound"},
		{"more than 20 resources", func() error {
			_, err := e.client.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: many})
			return err
		}, "ValidationError"},
		{"reserved aws: prefix", func() error {
			_, err := e.client.AddTags(ctx, &elb.AddTagsInput{ResourceArns: arns[:1], Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("1")}}})
			return err
		}, "ValidationError"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := apiCode(tt.call()); got != tt.code {
				t.Errorf("got %q, want %s", got, tt.code)
			}
		})
	}
	// The failed AddTags changed nothing on the target group it named first.
	if got := read(st.tgARN); got["x"] != "" {
		t.Errorf("a failed AddTags tagged the target group: %v", got)
	}

	// Tags survive a restart of the service.
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	if got := read(st.lbARN); got["handover:environment"] != "staging" {
		t.Errorf("after restart: %v", got)
	}
}
