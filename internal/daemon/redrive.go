package daemon

import "encoding/json"

// deadLetterARN returns deadLetterTargetArn from an SQS RedrivePolicy
// attribute ("" when absent or unreadable).
func deadLetterARN(policy string) string {
	var p struct {
		Target string `json:"deadLetterTargetArn"`
	}
	if policy == "" || json.Unmarshal([]byte(policy), &p) != nil {
		return ""
	}
	return p.Target
}
