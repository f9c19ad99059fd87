package ec2

import (
	"context"
	"slices"

	"github.com/handover-dev/handover/internal/localcloud/awsproto"
)

// DescribeImages lists the catalog: every image is the account's own and
// private, available, an x86_64 HVM machine image with an EBS root, as the
// instances started from it are described.

var imageFilters = []string{
	"image-id", "name", "description", "state", "architecture", "image-type", "is-public",
	"owner-id", "root-device-type", "root-device-name", "virtualization-type", "hypervisor", "platform-details",
}

type imageXML struct {
	ImageID            string     `xml:"imageId"`
	ImageLocation      string     `xml:"imageLocation"`
	ImageState         string     `xml:"imageState"`
	ImageOwnerID       string     `xml:"imageOwnerId"`
	IsPublic           bool       `xml:"isPublic"`
	Architecture       string     `xml:"architecture"`
	ImageType          string     `xml:"imageType"`
	Name               string     `xml:"name"`
	Description        string     `xml:"description,omitempty"`
	RootDeviceType     string     `xml:"rootDeviceType"`
	RootDeviceName     string     `xml:"rootDeviceName"`
	BlockDeviceMapping []struct{} `xml:"blockDeviceMapping>item"`
	VirtualizationType string     `xml:"virtualizationType"`
	Hypervisor         string     `xml:"hypervisor"`
	PlatformDetails    string     `xml:"platformDetails"`
	UsageOperation     string     `xml:"usageOperation"`
	EnaSupport         bool       `xml:"enaSupport"`
	Tags               []tagXML   `xml:"tagSet>item"`
}

type describeImagesResponse struct {
	head
	Images    []imageXML `xml:"imagesSet>item"`
	NextToken string     `xml:"nextToken,omitempty"`
}

func (s *Service) imageXML(id string, im Image) imageXML {
	name := im.Name
	if name == "" {
		name = id
	}
	return imageXML{
		ImageID: id, ImageLocation: s.cfg.AccountID + "/" + name, ImageState: "available", ImageOwnerID: s.cfg.AccountID,
		Architecture: "x86_64", ImageType: "machine", Name: name, Description: im.Description,
		RootDeviceType: "ebs", RootDeviceName: imdsRootDeviceName, BlockDeviceMapping: []struct{}{},
		VirtualizationType: "hvm", Hypervisor: "xen", PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances",
		EnaSupport: true, Tags: []tagXML{},
	}
}

func (x imageXML) attr(name string) []string {
	switch name {
	case "image-id":
		return []string{x.ImageID}
	case "name":
		return []string{x.Name}
	case "description":
		return []string{x.Description}
	case "state":
		return []string{x.ImageState}
	case "architecture":
		return []string{x.Architecture}
	case "image-type":
		return []string{x.ImageType}
	case "is-public":
		return []string{"false"}
	case "owner-id":
		return []string{x.ImageOwnerID}
	case "root-device-type":
		return []string{x.RootDeviceType}
	case "root-device-name":
		return []string{x.RootDeviceName}
	case "virtualization-type":
		return []string{x.VirtualizationType}
	case "hypervisor":
		return []string{x.Hypervisor}
	case "platform-details":
		return []string{x.PlatformDetails}
	}
	return nil
}

func (s *Service) describeImages(_ context.Context, v awsproto.Values) (response, error) {
	r, err := parseDescribe(v, "ImageId", kindImage, 1, 1000, false)
	if err != nil {
		return nil, err
	}
	if err := checkFilters(r.Filters, imageFilters...); err != nil {
		return nil, err
	}
	owners, err := list(v, "Owner")
	if err != nil {
		return nil, err
	}
	users, err := list(v, "ExecutableBy")
	if err != nil {
		return nil, err
	}
	// The catalog's images are the account's own and private: other
	// owners (amazon, aws-marketplace…) have none here, and none is
	// executable by all.
	self := func(a string) bool { return a == "self" || a == s.cfg.AccountID }
	if len(owners) > 0 && !slices.ContainsFunc(owners, self) || len(users) > 0 && !slices.ContainsFunc(users, self) {
		return &describeImagesResponse{Images: []imageXML{}}, nil
	}
	ids, err := selectIDs(catalogRefs(s.cfg.Catalog), r.IDs, kindImage)
	if err != nil {
		return nil, err
	}
	out := []imageXML{}
	for _, id := range ids {
		x := s.imageXML(id, s.cfg.Catalog[id])
		if matchFilters(r.Filters, nil, x.attr) {
			out = append(out, x)
		}
	}
	page, next := paginate(out, func(x imageXML) string { return x.ImageID }, r.Page)
	return &describeImagesResponse{Images: page, NextToken: next}, nil
}

// catalogRefs gives the catalog the shape selectIDs takes.
func catalogRefs(cat map[string]Image) map[string]*Image {
	out := make(map[string]*Image, len(cat))
	for id, im := range cat {
		out[id] = &im
	}
	return out
}
