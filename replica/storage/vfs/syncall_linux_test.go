package vfs

import "testing"

// TestSyncfsReportsErrors: syncfs is trusted from Linux 5.8 on, and an
// unreadable release is taken as older.
func TestSyncfsReportsErrors(t *testing.T) {
	for release, want := range map[string]bool{
		"6.18.44-fc-v595": true, "5.8.0": true, "5.10.0-28-amd64": true, "5.15": true, "10.0.0": true,
		"5.7.19": false, "4.19.0-26-amd64": false, "3.10.0-1160.el7.x86_64": false, "": false, "5": false, "x.y": false,
		"5.8-rc1": true, "5.7-rc1": false,
	} {
		if got := syncfsReportsErrors(release); got != want {
			t.Errorf("%q: %v, want %v", release, got, want)
		}
	}
}
