package postgres

import (
	"strings"
	"testing"
	"time"
)

// TestParseWALDump reads pg_waldump lines as PostgreSQL 15 prints them,
// including commits followed by more description after a semicolon.
func TestParseWALDump(t *testing.T) {
	out := `rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/0155E268, prev 0/0155E230, desc: INSERT off 3 flags 0x00, blkref #0: rel 1663/5/16384 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/0155E2A0, prev 0/0155E268, desc: COMMIT 2026-12-05 04:51:15.129510 UTC
rmgr: XLOG        len (rec/tot):     98/    98, tx:          0, lsn: 0/0155E2C8, prev 0/0155E2A0, desc: RESTORE_POINT before upgrade
rmgr: Transaction len (rec/tot):    165/   165, tx:        736, lsn: 0/0155E330, prev 0/0155E2C8, desc: COMMIT 2026-12-05 04:51:16.5 UTC; inval msgs: catcache 80 catcache 79 relcache 16397
rmgr: Standby     len (rec/tot):     50/    50, tx:          0, lsn: 0/0155E3D8, prev 0/0155E330, desc: RUNNING_XACTS nextXid 737
`
	var m LogMeta
	n, err := parseWALDump(strings.NewReader(out), &m)
	if err != nil || n != 5 {
		t.Fatalf("parsed %d records: %v", n, err)
	}
	first := time.Date(2026, 12, 5, 4, 51, 15, 129510000, time.UTC)
	last := time.Date(2026, 12, 5, 4, 51, 16, 500000000, time.UTC)
	if m.StartLSN != "0/0155E268" || m.EndLSN != "0/0155E3D8" || !m.FirstTime.Equal(first) || !m.LastTime.Equal(last) {
		t.Errorf("range %s..%s, times %s..%s", m.StartLSN, m.EndLSN, m.FirstTime, m.LastTime)
	}
	if len(m.RestorePoints) != 1 || m.RestorePoints[0].Name != "before upgrade" || m.RestorePoints[0].LSN != "0/0155E2C8" || !m.RestorePoints[0].Time.Equal(first) {
		t.Errorf("restore points %+v", m.RestorePoints)
	}
}

// TestParseWALLineRefusesWhatIsNotARecord: pg_waldump's own messages, and
// lines that only look like records, are not counted; a description that
// quotes a record header is kept whole.
func TestParseWALLineRefusesWhatIsNotARecord(t *testing.T) {
	for _, line := range []string{
		"pg_waldump: error: error in WAL record at 0/155E3D8: invalid record length at 0/155E410: wanted 24, got 0",
		"rmgr: Heap len (rec/tot): 59/ 59, tx: 735, lsn: 0/0155e268, prev 0/0155E230, desc: INSERT off 3",
		"rmgr: Heap len (rec/tot): 59/ 59, tx: 735, lsn: 0/0155E268, prev 0/, desc: INSERT off 3",
		"rmgr: Heap len (rec/tot): 59/ 59, tx: 735, lsn: 0/0155E268, prev 0/0155E230 desc: INSERT off 3",
		"rmgr:  len (rec/tot): 59/ 59, tx: 735, lsn: 0/0155E268, prev 0/0155E230, desc: INSERT off 3",
		"",
	} {
		if rmgr, lsn, desc, ok := parseWALLine(line); ok {
			t.Errorf("%q read as a record: %s %s %q", line, rmgr, lsn, desc)
		}
	}
	line := "rmgr: XLOG        len (rec/tot):     98/    98, tx:          0, lsn: 0/0155E2C8, prev 0/0155E2A0, desc: RESTORE_POINT lsn: 0/1, prev 0/2, desc: x"
	rmgr, lsn, desc, ok := parseWALLine(line)
	if !ok || rmgr != "XLOG" || lsn != "0/0155E2C8" || desc != "RESTORE_POINT lsn: 0/1, prev 0/2, desc: x" {
		t.Errorf("%q read as %v %s %s %q", line, ok, rmgr, lsn, desc)
	}
}
