package deploy

import (
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/cloudformation/policies"
)

// The ledger table's shape. These must match what the DynamoDB ledger
// backend (internal/ledger/dynamodb) reads and writes: it refuses to open a
// table whose key schema differs, and TTL on another attribute never
// expires its event items.
const (
	LedgerPartitionKey = "pk"
	LedgerSortKey      = "sk"
	LedgerTTLAttribute = "expires_at"
)

// ledgerActions are the DynamoDB calls the ledger backend makes on the
// table: DescribeTable when it opens the table and checks the key schema,
// then item reads and conditional writes. CreateTable and UpdateTimeToLive
// are deliberately absent: the template creates the table.
var ledgerActions = []string{
	"dynamodb:DeleteItem",
	"dynamodb:DescribeTable",
	"dynamodb:GetItem",
	"dynamodb:PutItem",
	"dynamodb:Query",
	"dynamodb:UpdateItem",
}

// ledgerURL is the HANDOVER_LEDGER value that opens the table.
func ledgerURL() string {
	return cloudformation.Sub("dynamodb://${" + idTable + "}?region=${AWS::Region}")
}

// ledgerTable is the table. It is retained when the stack is deleted or
// the table replaced: it records which volume holds each database's
// authoritative state, and losing it loses track of every database.
func ledgerTable() *dynamodb.Table {
	return &dynamodb.Table{
		AttributeDefinitions: []dynamodb.Table_AttributeDefinition{
			{AttributeName: LedgerPartitionKey, AttributeType: "S"},
			{AttributeName: LedgerSortKey, AttributeType: "S"},
		},
		KeySchema: []dynamodb.Table_KeySchema{
			{AttributeName: LedgerPartitionKey, KeyType: "HASH"},
			{AttributeName: LedgerSortKey, KeyType: "RANGE"},
		},
		BillingMode: cloudformation.String("PAY_PER_REQUEST"),
		TimeToLiveSpecification: &dynamodb.Table_TimeToLiveSpecification{
			AttributeName: cloudformation.String(LedgerTTLAttribute), Enabled: true,
		},
		PointInTimeRecoverySpecification: &dynamodb.Table_PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: cloudformation.Bool(true),
		},
		AWSCloudFormationDeletionPolicy:      policies.DeletionPolicy("Retain"),
		AWSCloudFormationUpdateReplacePolicy: policies.UpdateReplacePolicy("Retain"),
	}
}
