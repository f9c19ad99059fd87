package rds

// The response side: RDS's XML shapes. Every list is wrapped and its
// items carry the member name of the API model (<DBInstances><DBInstance>,
// <ReadReplicaDBInstanceIdentifiers><ReadReplicaDBInstanceIdentifier>,
// <TagList><Tag>, …): the Go SDK reads any item name, but the AWS CLI
// reads only the right one.

import (
	"encoding/json"
	"strconv"
	"time"
)

const timeFormat = "2006-01-02T15:04:05.000Z"

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type xmlTagList struct {
	Tags []xmlTag `xml:"Tag"`
}

func tagList(ts []tag) xmlTagList {
	out := xmlTagList{Tags: []xmlTag{}}
	for _, t := range ts {
		out.Tags = append(out.Tags, xmlTag(t))
	}
	return out
}

type xmlEndpoint struct {
	Address      string `xml:"Address"`
	Port         int    `xml:"Port"`
	HostedZoneID string `xml:"HostedZoneId"`
}

type xmlSGMembership struct {
	ID     string `xml:"VpcSecurityGroupId"`
	Status string `xml:"Status"`
}

type xmlParamGroup struct {
	Name   string `xml:"DBParameterGroupName"`
	Status string `xml:"ParameterApplyStatus"`
}

type xmlStatusInfo struct {
	StatusType string `xml:"StatusType"`
	Normal     bool   `xml:"Normal"`
	Status     string `xml:"Status"`
	Message    string `xml:"Message,omitempty"`
}

type xmlInstance struct {
	ID             string       `xml:"DBInstanceIdentifier"`
	Class          string       `xml:"DBInstanceClass"`
	Engine         string       `xml:"Engine"`
	Status         string       `xml:"DBInstanceStatus"`
	Master         string       `xml:"MasterUsername"`
	DBName         string       `xml:"DBName,omitempty"`
	Endpoint       *xmlEndpoint `xml:"Endpoint,omitempty"`
	Storage        int          `xml:"AllocatedStorage"`
	Created        string       `xml:"InstanceCreateTime,omitempty"`
	BackupWindow   string       `xml:"PreferredBackupWindow"`
	Retention      int          `xml:"BackupRetentionPeriod"`
	SecurityGroups struct {
		Items []xmlSGMembership `xml:"VpcSecurityGroupMembership"`
	} `xml:"VpcSecurityGroups"`
	ParamGroups struct {
		Items []xmlParamGroup `xml:"DBParameterGroup"`
	} `xml:"DBParameterGroups"`
	Zone              string `xml:"AvailabilityZone"`
	MaintenanceWindow string `xml:"PreferredMaintenanceWindow"`
	MultiAZ           bool   `xml:"MultiAZ"`
	EngineVersion     string `xml:"EngineVersion"`
	AutoMinor         bool   `xml:"AutoMinorVersionUpgrade"`
	Source            string `xml:"ReadReplicaSourceDBInstanceIdentifier,omitempty"`
	Replicas          struct {
		IDs []string `xml:"ReadReplicaDBInstanceIdentifier"`
	} `xml:"ReadReplicaDBInstanceIdentifiers"`
	LicenseModel       string `xml:"LicenseModel"`
	PubliclyAccessible bool   `xml:"PubliclyAccessible"`
	StatusInfos        *struct {
		Items []xmlStatusInfo `xml:"DBInstanceStatusInfo"`
	} `xml:"StatusInfos,omitempty"`
	StorageType      string     `xml:"StorageType"`
	DbInstancePort   int        `xml:"DbInstancePort"`
	StorageEncrypted bool       `xml:"StorageEncrypted"`
	ResourceID       string     `xml:"DbiResourceId"`
	CACertificate    string     `xml:"CACertificateIdentifier"`
	CopyTags         bool       `xml:"CopyTagsToSnapshot"`
	ARN              string     `xml:"DBInstanceArn"`
	IAMAuth          bool       `xml:"IAMDatabaseAuthenticationEnabled"`
	Protected        bool       `xml:"DeletionProtection"`
	TagList          xmlTagList `xml:"TagList"`
	NetworkType      string     `xml:"NetworkType"`
}

type xmlSnapshot struct {
	ID            string     `xml:"DBSnapshotIdentifier"`
	Instance      string     `xml:"DBInstanceIdentifier"`
	Created       string     `xml:"SnapshotCreateTime,omitempty"`
	Engine        string     `xml:"Engine"`
	Storage       int        `xml:"AllocatedStorage"`
	Status        string     `xml:"Status"`
	Port          int        `xml:"Port"`
	Zone          string     `xml:"AvailabilityZone"`
	InstCreate    string     `xml:"InstanceCreateTime,omitempty"`
	Master        string     `xml:"MasterUsername"`
	EngineVersion string     `xml:"EngineVersion"`
	LicenseModel  string     `xml:"LicenseModel"`
	Type          string     `xml:"SnapshotType"`
	Progress      int        `xml:"PercentProgress"`
	StorageType   string     `xml:"StorageType"`
	Encrypted     bool       `xml:"Encrypted"`
	ARN           string     `xml:"DBSnapshotArn"`
	IAMAuth       bool       `xml:"IAMDatabaseAuthenticationEnabled"`
	ResourceID    string     `xml:"DbiResourceId"`
	TagList       xmlTagList `xml:"TagList"`
	DBName        string     `xml:"-"`
}

type instanceResult struct {
	Instance xmlInstance `xml:"DBInstance"`
}

type snapshotResult struct {
	Snapshot xmlSnapshot `xml:"DBSnapshot"`
}

type describeInstancesResult struct {
	Marker    string `xml:"Marker,omitempty"`
	Instances struct {
		Items []xmlInstance `xml:"DBInstance"`
	} `xml:"DBInstances"`
}

type describeSnapshotsResult struct {
	Marker    string `xml:"Marker,omitempty"`
	Snapshots struct {
		Items []xmlSnapshot `xml:"DBSnapshot"`
	} `xml:"DBSnapshots"`
}

type listTagsResult struct {
	TagList xmlTagList `xml:"TagList"`
}

// toXML renders inst for the API; repl is the monitor's last reading of a
// replica.
func (s *Service) toXML(inst *instance, repl replState, haveRepl bool) xmlInstance {
	x := xmlInstance{
		ID: inst.ID, Class: inst.Class, Engine: inst.Engine, Status: inst.Status, Master: inst.Master, DBName: inst.DBName,
		Storage: inst.Storage, Created: ts(inst.Created), BackupWindow: "03:00-03:30", Retention: inst.Retention,
		Zone: inst.Zone, MaintenanceWindow: "sun:05:00-sun:05:30", EngineVersion: inst.Version, AutoMinor: true,
		Source: inst.Source, LicenseModel: "postgresql-license", StorageType: "gp2", ResourceID: inst.ResourceID,
		CACertificate: "rds-ca-rsa2048-g1", ARN: s.instanceARN(inst.ID), Protected: inst.Protected,
		TagList: tagList(inst.Tags), NetworkType: "IPV4",
	}
	if inst.Status == statusCreating {
		x.Created = ""
	}
	// The endpoint is there once the instance has been available and its
	// server runs: not while it is created, rebooted or deleted, but
	// during a snapshot or a promotion, as on RDS.
	switch inst.Status {
	case statusAvailable, statusBackingUp, statusModifying:
		x.Endpoint = &xmlEndpoint{Address: "127.0.0.1", Port: inst.Port, HostedZoneID: "Z2R2ITUGPM61AM"}
	}
	for _, sg := range inst.SGs {
		x.SecurityGroups.Items = append(x.SecurityGroups.Items, xmlSGMembership{ID: sg, Status: "active"})
	}
	x.ParamGroups.Items = []xmlParamGroup{{Name: "default.postgres" + strconv.Itoa(s.pg.major), Status: "in-sync"}}
	x.Replicas.IDs = append([]string{}, inst.Replicas...)
	if inst.Source != "" && haveRepl {
		info := xmlStatusInfo{StatusType: "read replication", Normal: repl.streaming, Status: "replicating"}
		if !repl.streaming {
			info.Status, info.Message = "error", repl.message
		}
		x.StatusInfos = &struct {
			Items []xmlStatusInfo `xml:"DBInstanceStatusInfo"`
		}{Items: []xmlStatusInfo{info}}
	}
	return x
}

func (s *Service) snapXML(sn *snapshot) xmlSnapshot {
	x := xmlSnapshot{
		ID: sn.ID, Instance: sn.Instance, Created: ts(sn.Created), Engine: sn.Engine, Storage: sn.Storage, Status: sn.Status,
		Port: sn.Port, Zone: sn.Zone, InstCreate: ts(sn.InstCreate), Master: sn.Master, EngineVersion: sn.Version,
		LicenseModel: "postgresql-license", Type: "manual", StorageType: "gp2", ARN: s.snapshotARN(sn.ID),
		ResourceID: sn.InstanceRI, TagList: tagList(sn.Tags),
	}
	if sn.Status == statusAvailable {
		x.Progress = 100
	}
	return x
}

func marshalState(st *state) ([]byte, error) { return json.MarshalIndent(st, "", "  ") }
