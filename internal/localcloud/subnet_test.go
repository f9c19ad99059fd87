package localcloud

import "testing"

// TestClaimSubnet: running clouds never share a block of addresses, and a
// block is free again once its holder is gone.
func TestClaimSubnet(t *testing.T) {
	a, fa, err := claimSubnet()
	if err != nil {
		t.Fatal(err)
	}
	b, fb, err := claimSubnet()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two running clouds got the same subnet %s", a)
	}
	if a.Bits() != 16 || a.Addr().As4()[0] != 127 || a.Addr().As4()[1] == 0 {
		t.Errorf("subnet %s: want a 127.X.0.0/16 with X > 0", a)
	}
	fb.Close()
	fa.Close()
}
