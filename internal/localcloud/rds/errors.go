package rds

import (
	"fmt"
	"net/http"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// RDS's errors, with the codes and statuses of its API model
// (botocore's rds/2014-10-31 service-2.json), which the SDK waiters and
// the CLI switch on.

func errInstanceNotFound(id string) error {
	return &awsproto.Error{Code: "DBInstanceNotFound", Message: fmt.Sprintf("DBInstance %s not found.", id), Status: http.StatusNotFound}
}

func errSnapshotNotFound(id string) error {
	return &awsproto.Error{Code: "DBSnapshotNotFound", Message: fmt.Sprintf("DBSnapshot %s not found.", id), Status: http.StatusNotFound}
}

func errInstanceExists(id string) error {
	return awsproto.Errorf("DBInstanceAlreadyExists", "DB instance %s already exists; choose another identifier, or delete it first.", id)
}

func errSnapshotExists(id string) error {
	return awsproto.Errorf("DBSnapshotAlreadyExists", "Cannot create the snapshot because a snapshot with the identifier %s already exists.", id)
}

func errInvalidState(format string, args ...any) error {
	return awsproto.Errorf("InvalidDBInstanceState", format, args...)
}

func errInvalidSnapshotState(format string, args ...any) error {
	return awsproto.Errorf("InvalidDBSnapshotState", format, args...)
}

func errCombination(format string, args ...any) error {
	return awsproto.Errorf("InvalidParameterCombination", format, args...)
}

func invalid(format string, args ...any) error {
	return awsproto.InvalidParameterValue(format, args...)
}
