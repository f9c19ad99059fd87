package dynalitetest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/handover-dev/handover/internal/testenv/dynalitetest"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

// TestServer checks that the shared server is on loopback, that Table names
// differ, and that a client can create and use a table on it.
func TestServer(t *testing.T) {
	ctx := t.Context()
	if ep := dynalitetest.Start(t); !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Errorf("endpoint %s is not on loopback", ep)
	}
	if again := dynalitetest.Start(t); again != dynalitetest.Start(t) {
		t.Errorf("two Starts gave different servers")
	}
	a, b := dynalitetest.Table(t), dynalitetest.Table(t)
	if a == b {
		t.Fatalf("two Tables returned the same name %s", a)
	}
	c := dynalitetest.Client(t)
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(a),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a)}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(a),
		Item: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(b)})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("describing a table never created: %v, want ResourceNotFoundException", err)
	}
}
