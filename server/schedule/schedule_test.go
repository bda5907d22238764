package schedule

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Every expected instant below was worked out by hand from the zone's UTC
// offsets (checked against zdump for the 2026 transitions), never by running
// this package.

const (
	F = api.BackupFull
	I = api.BackupIncremental
)

// utc parses "2006-01-02 15:04" as a UTC instant.
func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return v
}

type want struct {
	at  string // UTC, "2006-01-02 15:04"
	typ string
}

func policy(tz string, full api.FullSchedule, inc *api.IncrementalSchedule, window int) *api.PolicySpec {
	return &api.PolicySpec{Name: "p", Timezone: tz, Full: full, Incremental: inc, WindowHours: window}
}

func days(s string) []string { return strings.Split(s, ",") }

const allDays = "mon,tue,wed,thu,fri,sat,sun"

func fmtSlots(slots []Slot) string {
	var b strings.Builder
	for _, s := range slots {
		fmt.Fprintf(&b, "\n  %s %s (%s)", s.At.UTC().Format("2006-01-02 15:04"), s.Type, s.At.Format("Mon 15:04 MST"))
	}
	return b.String()
}

func checkSlots(t *testing.T, got []Slot, wants []want) {
	t.Helper()
	ok := len(got) == len(wants)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].At.Equal(utc(t, wants[i].at)) && got[i].Type == wants[i].typ
	}
	if !ok {
		var w strings.Builder
		for _, x := range wants {
			fmt.Fprintf(&w, "\n  %s %s", x.at, x.typ)
		}
		t.Errorf("got %d slots:%s\nwant %d:%s", len(got), fmtSlots(got), len(wants), w.String())
	}
	for i := 1; i < len(got); i++ {
		if !got[i].At.After(got[i-1].At) {
			t.Errorf("slots %d and %d are not strictly increasing: %s, %s", i-1, i, got[i-1].At, got[i].At)
		}
	}
}

func TestDue(t *testing.T) {
	tests := []struct {
		name         string
		p            *api.PolicySpec
		after, until string
		want         []want
	}{
		{
			name:  "UTC weekly full, daily incremental",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "22:00"}, 0),
			after: "2026-02-28 00:00", until: "2026-03-03 00:00",
			want: []want{{"2026-02-28 22:00", I}, {"2026-03-01 01:00", F}, {"2026-03-01 22:00", I}, {"2026-03-02 22:00", I}},
		},
		{
			// PST is -8 until Mar 8 10:00Z, then PDT -7; 02:30 on Mar 8 is in the gap.
			name:  "Los Angeles spring forward, full daily 02:30",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days(allDays), At: "02:30"}, nil, 0),
			after: "2026-03-07 00:00", until: "2026-03-10 00:00",
			want: []want{{"2026-03-07 10:30", F}, {"2026-03-08 10:00", F}, {"2026-03-09 09:30", F}},
		},
		{
			name:  "Los Angeles spring forward, incremental daily 01:30",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("wed"), At: "12:00"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "01:30"}, 0),
			after: "2026-03-07 00:00", until: "2026-03-10 00:00",
			want: []want{{"2026-03-07 09:30", I}, {"2026-03-08 09:30", I}, {"2026-03-09 08:30", I}},
		},
		{
			name:  "Los Angeles spring forward, full Sunday 01:30, incremental daily 02:30",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:30"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "02:30"}, 0),
			after: "2026-03-07 00:00", until: "2026-03-10 00:00",
			want: []want{{"2026-03-07 10:30", I}, {"2026-03-08 09:30", F}, {"2026-03-08 10:00", I}, {"2026-03-09 09:30", I}},
		},
		{
			// PDT -7 until Nov 1 09:00Z, then PST -8; 01:00-02:00 happens twice.
			name:  "Los Angeles fall back, full daily 01:30 runs at first occurrence",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days(allDays), At: "01:30"}, nil, 0),
			after: "2026-10-31 00:00", until: "2026-11-03 00:00",
			want: []want{{"2026-10-31 08:30", F}, {"2026-11-01 08:30", F}, {"2026-11-02 09:30", F}},
		},
		{
			name:  "Los Angeles fall back, incremental daily 02:30",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("wed"), At: "12:00"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "02:30"}, 0),
			after: "2026-10-31 00:00", until: "2026-11-03 00:00",
			want: []want{{"2026-10-31 09:30", I}, {"2026-11-01 10:30", I}, {"2026-11-02 10:30", I}},
		},
		{
			name:  "Los Angeles fall back, full Sunday 01:30, incremental daily 02:30",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:30"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "02:30"}, 0),
			after: "2026-10-31 00:00", until: "2026-11-03 00:00",
			want: []want{{"2026-10-31 09:30", I}, {"2026-11-01 08:30", F}, {"2026-11-01 10:30", I}, {"2026-11-02 10:30", I}},
		},
		{
			// CET +1 until Mar 29 01:00Z, then CEST +2.
			name:  "Paris spring forward 02:30",
			p:     policy("Europe/Paris", api.FullSchedule{DaysOfWeek: days(allDays), At: "02:30"}, nil, 0),
			after: "2026-03-28 00:00", until: "2026-03-31 00:00",
			want: []want{{"2026-03-28 01:30", F}, {"2026-03-29 01:00", F}, {"2026-03-30 00:30", F}},
		},
		{
			// CEST +2 until Oct 25 01:00Z, then CET +1; 02:00-03:00 happens twice.
			name:  "Paris fall back 02:30",
			p:     policy("Europe/Paris", api.FullSchedule{DaysOfWeek: days(allDays), At: "02:30"}, nil, 0),
			after: "2026-10-24 00:00", until: "2026-10-27 00:00",
			want: []want{{"2026-10-24 00:30", F}, {"2026-10-25 00:30", F}, {"2026-10-26 01:30", F}},
		},
		{
			// +11 until Apr 4 15:00Z, then +10:30; 01:30-02:00 happens twice.
			name:  "Lord Howe half-hour fall back 01:45",
			p:     policy("Australia/Lord_Howe", api.FullSchedule{DaysOfWeek: days(allDays), At: "01:45"}, nil, 0),
			after: "2026-04-03 00:00", until: "2026-04-06 00:00",
			want: []want{{"2026-04-03 14:45", F}, {"2026-04-04 14:45", F}, {"2026-04-05 15:15", F}},
		},
		{
			// +10:30 until Oct 3 15:30Z, then +11; 02:00-02:30 is skipped.
			name:  "Lord Howe half-hour spring forward 02:15",
			p:     policy("Australia/Lord_Howe", api.FullSchedule{DaysOfWeek: days(allDays), At: "02:15"}, nil, 0),
			after: "2026-10-02 00:00", until: "2026-10-05 00:00",
			want: []want{{"2026-10-02 15:45", F}, {"2026-10-03 15:30", F}, {"2026-10-04 15:15", F}},
		},
		{
			// +05:30 all year; local Monday starts on Sunday 18:30Z.
			name:  "Kolkata half-hour offset, full Monday 03:00, incremental daily 00:15",
			p:     policy("Asia/Kolkata", api.FullSchedule{DaysOfWeek: days("mon"), At: "03:00"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "00:15"}, 0),
			after: "2026-03-01 00:00", until: "2026-03-03 00:00",
			want: []want{{"2026-03-01 18:45", I}, {"2026-03-01 21:30", F}, {"2026-03-02 18:45", I}},
		},
		{
			name:  "day_of_month 31 runs on the last day of short months",
			p:     policy("UTC", api.FullSchedule{DayOfMonth: 31, At: "03:00"}, nil, 0),
			after: "2026-01-01 00:00", until: "2026-05-01 00:00",
			want: []want{{"2026-01-31 03:00", F}, {"2026-02-28 03:00", F}, {"2026-03-31 03:00", F}, {"2026-04-30 03:00", F}},
		},
		{
			name:  "day_of_month 29 in leap year 2028",
			p:     policy("UTC", api.FullSchedule{DayOfMonth: 29, At: "03:00"}, nil, 0),
			after: "2028-01-01 00:00", until: "2028-04-01 00:00",
			want: []want{{"2028-01-29 03:00", F}, {"2028-02-29 03:00", F}, {"2028-03-29 03:00", F}},
		},
		{
			name:  "day_of_month 29 in common year 2027",
			p:     policy("UTC", api.FullSchedule{DayOfMonth: 29, At: "03:00"}, nil, 0),
			after: "2027-02-01 00:00", until: "2027-03-01 00:00",
			want: []want{{"2027-02-28 03:00", F}},
		},
		{
			// The month's last day is a local day: Feb 28 23:00 PST is Mar 1
			// 07:00Z. 'after' is local Feb 1 00:00, so Jan 31's run (Feb 1
			// 07:00Z) is outside.
			name:  "day_of_month 31 in Los Angeles February",
			p:     policy("America/Los_Angeles", api.FullSchedule{DayOfMonth: 31, At: "23:00"}, nil, 0),
			after: "2026-02-01 08:00", until: "2026-03-31 00:00",
			want: []want{{"2026-03-01 07:00", F}},
		},
		{
			name:  "every_hours 5 restarts at midnight",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days("sat"), At: "12:30"}, &api.IncrementalSchedule{EveryHours: 5}, 0),
			after: "2026-03-03 12:00", until: "2026-03-04 06:00",
			want: []want{{"2026-03-03 15:00", I}, {"2026-03-03 20:00", I}, {"2026-03-04 00:00", I}, {"2026-03-04 05:00", I}},
		},
		{
			name:  "every_hours 7 restarts at midnight",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days("sat"), At: "12:30"}, &api.IncrementalSchedule{EveryHours: 7}, 0),
			after: "2026-03-03 20:00", until: "2026-03-04 14:00",
			want: []want{{"2026-03-03 21:00", I}, {"2026-03-04 00:00", I}, {"2026-03-04 07:00", I}, {"2026-03-04 14:00", I}},
		},
		{
			name:  "every_hours 7 across Los Angeles spring forward",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sat"), At: "12:30"}, &api.IncrementalSchedule{EveryHours: 7}, 0),
			after: "2026-03-08 07:00", until: "2026-03-09 07:00",
			want: []want{{"2026-03-08 08:00", I}, {"2026-03-08 14:00", I}, {"2026-03-08 21:00", I}, {"2026-03-09 04:00", I}, {"2026-03-09 07:00", I}},
		},
		{
			name:  "every_hours 7 across Los Angeles fall back",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sat"), At: "12:30"}, &api.IncrementalSchedule{EveryHours: 7}, 0),
			after: "2026-11-01 06:00", until: "2026-11-02 08:00",
			want: []want{{"2026-11-01 07:00", I}, {"2026-11-01 15:00", I}, {"2026-11-01 22:00", I}, {"2026-11-02 05:00", I}, {"2026-11-02 08:00", I}},
		},
		{
			// -04 until Sep 6 04:00Z, then -03: local midnight of Sep 6 is
			// skipped, so that day's 00:00 slot runs at 01:00 -03.
			name:  "every_hours 5 when Santiago skips midnight",
			p:     policy("America/Santiago", api.FullSchedule{DaysOfWeek: days("mon"), At: "12:00"}, &api.IncrementalSchedule{EveryHours: 5}, 0),
			after: "2026-09-05 22:00", until: "2026-09-06 20:00",
			want: []want{{"2026-09-06 00:00", I}, {"2026-09-06 04:00", I}, {"2026-09-06 08:00", I}, {"2026-09-06 13:00", I}, {"2026-09-06 18:00", I}},
		},
		{
			// -03 until Apr 5 03:00Z, then -04: Saturday 23:00-24:00 happens
			// twice and Sunday 00:00 first shows at 04:00Z.
			name:  "every_hours 5 when Santiago repeats the hour before midnight",
			p:     policy("America/Santiago", api.FullSchedule{DaysOfWeek: days("mon"), At: "12:00"}, &api.IncrementalSchedule{EveryHours: 5}, 0),
			after: "2026-04-04 22:00", until: "2026-04-05 14:00",
			want: []want{{"2026-04-04 23:00", I}, {"2026-04-05 04:00", I}, {"2026-04-05 09:00", I}, {"2026-04-05 14:00", I}},
		},
		{
			// 02:00 is skipped and runs at 03:00 PDT, the same instant as the
			// 03:00 slot: one slot, not two.
			name:  "every_hours 1 across Los Angeles spring forward",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sat"), At: "12:30"}, &api.IncrementalSchedule{EveryHours: 1}, 0),
			after: "2026-03-08 07:30", until: "2026-03-08 11:30",
			want: []want{{"2026-03-08 08:00", I}, {"2026-03-08 09:00", I}, {"2026-03-08 10:00", I}, {"2026-03-08 11:00", I}},
		},
		{
			// 01:00 runs once (PDT); the next slot is 02:00 PST, two hours later.
			name:  "every_hours 1 across Los Angeles fall back",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sat"), At: "12:30"}, &api.IncrementalSchedule{EveryHours: 1}, 0),
			after: "2026-11-01 06:30", until: "2026-11-01 11:30",
			want: []want{{"2026-11-01 07:00", I}, {"2026-11-01 08:00", I}, {"2026-11-01 10:00", I}, {"2026-11-01 11:00", I}},
		},
		{
			name:  "coincident full and daily incremental: only the full",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "01:00"}, 0),
			after: "2026-02-28 00:00", until: "2026-03-03 00:00",
			want: []want{{"2026-02-28 01:00", I}, {"2026-03-01 01:00", F}, {"2026-03-02 01:00", I}},
		},
		{
			name:  "coincident full and every_hours incremental: only the full",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "12:00"}, &api.IncrementalSchedule{EveryHours: 6}, 0),
			after: "2026-03-01 00:00", until: "2026-03-01 23:59",
			want: []want{{"2026-03-01 06:00", I}, {"2026-03-01 12:00", F}, {"2026-03-01 18:00", I}},
		},
		{
			// Full 02:30 and incrementals 02:00 and 03:00 all land on 03:00 PDT.
			name:  "full and incrementals merged by the spring-forward gap",
			p:     policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sun"), At: "02:30"}, &api.IncrementalSchedule{EveryHours: 1}, 0),
			after: "2026-03-08 08:30", until: "2026-03-08 11:00",
			want: []want{{"2026-03-08 09:00", I}, {"2026-03-08 10:00", F}, {"2026-03-08 11:00", I}},
		},
		{
			// Samoa went from -10 to +14 at Dec 30 10:00Z, skipping local
			// Dec 30: its four slots and Dec 31 00:00 are one full slot at
			// the first instant of Dec 31.
			name:  "Samoa skips a whole day",
			p:     policy("Pacific/Apia", api.FullSchedule{DaysOfWeek: days(allDays), At: "12:00"}, &api.IncrementalSchedule{EveryHours: 6}, 0),
			after: "2011-12-29 20:00", until: "2011-12-31 04:00",
			want: []want{{"2011-12-29 22:00", F}, {"2011-12-30 04:00", I}, {"2011-12-30 10:00", F}, {"2011-12-30 16:00", I}, {"2011-12-30 22:00", F}, {"2011-12-31 04:00", I}},
		},
		{
			name:  "after is excluded and until included",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days(allDays), At: "01:00"}, nil, 0),
			after: "2026-03-01 01:00", until: "2026-03-03 01:00",
			want: []want{{"2026-03-02 01:00", F}, {"2026-03-03 01:00", F}},
		},
		{
			name:  "empty interval",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days(allDays), At: "01:00"}, nil, 0),
			after: "2026-03-01 01:00", until: "2026-03-01 01:00",
			want: nil,
		},
		{
			name:  "reversed interval",
			p:     policy("UTC", api.FullSchedule{DaysOfWeek: days(allDays), At: "01:00"}, nil, 0),
			after: "2026-03-03 01:00", until: "2026-03-01 00:00",
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Due(tc.p, utc(t, tc.after), utc(t, tc.until))
			if err != nil {
				t.Fatal(err)
			}
			checkSlots(t, got, tc.want)
			for _, s := range got {
				if s.At.Location().String() != tc.p.Timezone {
					t.Errorf("slot %s is in %s, want the policy's zone %s", s.At, s.At.Location(), tc.p.Timezone)
				}
			}
		})
	}
}

// The reference policy of the retention spec: fulls on Wednesday at noon and
// differentials every evening, in Los Angeles. February 2017 is PST (-8), and
// 1 Feb 2017 was a Wednesday.
func TestReferencePolicy(t *testing.T) {
	p := policy("America/Los_Angeles",
		api.FullSchedule{DaysOfWeek: days("wed"), At: "12:00"},
		&api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "21:00"}, 0)
	// Local 1 Feb 00:00 to 11 Feb 00:00, i.e. the whole of 1-10 Feb.
	got, err := Due(p, utc(t, "2017-02-01 08:00"), utc(t, "2017-02-11 08:00"))
	if err != nil {
		t.Fatal(err)
	}
	checkSlots(t, got, []want{
		{"2017-02-01 20:00", F}, // Wed 1 Feb 12:00
		{"2017-02-02 05:00", I}, // Wed 1 Feb 21:00
		{"2017-02-03 05:00", I},
		{"2017-02-04 05:00", I},
		{"2017-02-05 05:00", I},
		{"2017-02-06 05:00", I},
		{"2017-02-07 05:00", I},
		{"2017-02-08 05:00", I}, // Tue 7 Feb 21:00
		{"2017-02-08 20:00", F}, // Wed 8 Feb 12:00
		{"2017-02-09 05:00", I},
		{"2017-02-10 05:00", I},
		{"2017-02-11 05:00", I}, // Fri 10 Feb 21:00
	})
}

func TestNextAndLast(t *testing.T) {
	weekly := policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}, &api.IncrementalSchedule{DaysOfWeek: days(allDays), At: "22:00"}, 0)
	monthly := policy("UTC", api.FullSchedule{DayOfMonth: 31, At: "03:00"}, nil, 0)
	la := policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days(allDays), At: "02:30"}, nil, 0)
	tests := []struct {
		name       string
		p          *api.PolicySpec
		t          time.Time
		next, last want
	}{
		{"between slots", weekly, utc(t, "2026-03-01 12:00"), want{"2026-03-01 22:00", I}, want{"2026-03-01 01:00", F}},
		{"on a slot", weekly, utc(t, "2026-03-01 01:00"), want{"2026-03-01 22:00", I}, want{"2026-03-01 01:00", F}},
		{"a nanosecond before a slot", weekly, utc(t, "2026-03-01 01:00").Add(-time.Nanosecond), want{"2026-03-01 01:00", F}, want{"2026-02-28 22:00", I}},
		{"a nanosecond after a slot", weekly, utc(t, "2026-03-01 01:00").Add(time.Nanosecond), want{"2026-03-01 22:00", I}, want{"2026-03-01 01:00", F}},
		{"monthly, a month away", monthly, utc(t, "2026-03-01 00:00"), want{"2026-03-31 03:00", F}, want{"2026-02-28 03:00", F}},
		{"monthly, 31 days back", monthly, utc(t, "2026-03-31 02:59"), want{"2026-03-31 03:00", F}, want{"2026-02-28 03:00", F}},
		{"spring-forward gap", la, utc(t, "2026-03-08 09:59"), want{"2026-03-08 10:00", F}, want{"2026-03-07 10:30", F}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			checkSlots(t, []Slot{s.Next(tc.t)}, []want{tc.next})
			checkSlots(t, []Slot{s.Last(tc.t)}, []want{tc.last})
			next, err := Next(tc.p, tc.t)
			if err != nil {
				t.Fatal(err)
			}
			checkSlots(t, []Slot{next}, []want{tc.next})
		})
	}
}

func TestDeadline(t *testing.T) {
	sixHourly := func(window int) *api.PolicySpec {
		return policy("UTC", api.FullSchedule{DaysOfWeek: days(allDays), At: "01:00"}, &api.IncrementalSchedule{EveryHours: 6}, window)
	}
	weeklyOnly := func(window int) *api.PolicySpec {
		return policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}, nil, window)
	}
	tests := []struct {
		name string
		p    *api.PolicySpec
		slot want
		want string
	}{
		{"window 0 ends at the next slot", sixHourly(0), want{"2026-03-02 01:00", F}, "2026-03-02 06:00"},
		{"window 0 of an incremental ends at the next full", sixHourly(0), want{"2026-03-02 00:00", I}, "2026-03-02 01:00"},
		{"window 2", sixHourly(2), want{"2026-03-02 01:00", F}, "2026-03-02 03:00"},
		{"window 8 would cross the next slot and stops there", sixHourly(8), want{"2026-03-02 01:00", F}, "2026-03-02 06:00"},
		{"window 0 of a weekly full lasts a week", weeklyOnly(0), want{"2026-03-01 01:00", F}, "2026-03-08 01:00"},
		{"window 168 of a weekly full meets the next slot", weeklyOnly(168), want{"2026-03-01 01:00", F}, "2026-03-08 01:00"},
		{"window 24 of a weekly full", weeklyOnly(24), want{"2026-03-01 01:00", F}, "2026-03-02 01:00"},
		{
			// 00:30 PST is 08:30Z; four elapsed hours later is 12:30Z (05:30 PDT), not 04:30 PDT.
			"window counts elapsed hours across spring forward",
			policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days(allDays), At: "00:30"}, nil, 4),
			want{"2026-03-08 08:30", F}, "2026-03-08 12:30",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slot := Slot{At: utc(t, tc.slot.at), Type: tc.slot.typ}
			deadline := utc(t, tc.want)
			if got := Deadline(tc.p, slot); !got.Equal(deadline) {
				t.Errorf("Deadline = %s, want %s", got.UTC(), deadline)
			}
			s, err := New(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				now  time.Time
				open bool
			}{
				{slot.At.Add(-time.Second), false},
				{slot.At, true},
				{deadline.Add(-time.Second), true},
				{deadline, false},
			} {
				if got := s.InWindow(slot, c.now); got != c.open {
					t.Errorf("InWindow(%s) = %v, want %v", c.now, got, c.open)
				}
			}
		})
	}

	bad := policy("Mars/Olympus_Mons", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}, nil, 4)
	at := utc(t, "2026-03-01 01:00")
	if got := Deadline(bad, Slot{At: at, Type: F}); !got.Equal(at) {
		t.Errorf("Deadline of an invalid policy = %s, want the slot itself %s", got, at)
	}
}

func TestTypeFor(t *testing.T) {
	at := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		slotType string
		hasFull  bool
		want     string
	}{
		{I, false, F},
		{F, false, F},
		{I, true, I},
		{F, true, F},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/hasFull=%v", tc.slotType, tc.hasFull), func(t *testing.T) {
			if got := TypeFor(Slot{At: at, Type: tc.slotType}, tc.hasFull); got != tc.want {
				t.Errorf("TypeFor = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ok := api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}
	tests := []struct {
		name    string
		p       *api.PolicySpec
		message string
	}{
		{"nil policy", nil, "nil policy"},
		{"missing timezone", policy("", ok, nil, 0), "timezone"},
		{"host timezone", policy("Local", ok, nil, 0), "timezone"},
		{"unknown timezone", policy("Mars/Olympus_Mons", ok, nil, 0), "Mars/Olympus_Mons"},
		{"no full days", policy("UTC", api.FullSchedule{At: "01:00"}, nil, 0), "full needs"},
		{"both full forms", policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), DayOfMonth: 1, At: "01:00"}, nil, 0), "both"},
		{"day_of_month 32", policy("UTC", api.FullSchedule{DayOfMonth: 32, At: "01:00"}, nil, 0), "day_of_month"},
		{"bad weekday", policy("UTC", api.FullSchedule{DaysOfWeek: days("monday"), At: "01:00"}, nil, 0), "monday"},
		{"24:00", policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "24:00"}, nil, 0), "full.at"},
		{"one-digit hour", policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "1:00"}, nil, 0), "full.at"},
		{"every_hours 25", policy("UTC", ok, &api.IncrementalSchedule{EveryHours: 25}, 0), "every_hours"},
		{"every_hours with at", policy("UTC", ok, &api.IncrementalSchedule{EveryHours: 2, At: "01:00"}, 0), "every_hours"},
		{"incremental without days", policy("UTC", ok, &api.IncrementalSchedule{At: "01:00"}, 0), "incremental needs"},
		{"incremental without at", policy("UTC", ok, &api.IncrementalSchedule{DaysOfWeek: days("mon")}, 0), "incremental.at"},
		{"window 169", policy("UTC", ok, nil, 169), "window_hours"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("New: error %v, want one mentioning %q", err, tc.message)
			}
			if _, err := Due(tc.p, utc(t, "2026-01-01 00:00"), utc(t, "2026-01-02 00:00")); err == nil {
				t.Error("Due accepted the policy")
			}
			if _, err := Next(tc.p, utc(t, "2026-01-01 00:00")); err == nil {
				t.Error("Next accepted the policy")
			}
		})
	}
}

func TestDueSpanLimit(t *testing.T) {
	p := policy("UTC", api.FullSchedule{DaysOfWeek: days("sun"), At: "01:00"}, nil, 0)
	_, err := Due(p, time.Time{}, utc(t, "2026-01-01 00:00"))
	if !errors.Is(err, ErrSpanTooLong) {
		t.Fatalf("Due from the zero time: error %v, want ErrSpanTooLong", err)
	}
}

// Due over a year must agree with walking Next slot by slot, and with Last
// walking back, in zones with odd transitions.
func TestDueAgreesWithNextAndLast(t *testing.T) {
	for _, tz := range []string{"America/Los_Angeles", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata"} {
		t.Run(tz, func(t *testing.T) {
			s, err := New(policy(tz, api.FullSchedule{DayOfMonth: 31, At: "01:30"}, &api.IncrementalSchedule{EveryHours: 3}, 0))
			if err != nil {
				t.Fatal(err)
			}
			from, to := utc(t, "2026-01-01 00:00"), utc(t, "2027-01-01 00:00")
			due, err := s.Due(from, to)
			if err != nil {
				t.Fatal(err)
			}
			// 365 days of 8 slots plus one full a month, fewer where a
			// spring-forward gap merged two slots.
			if len(due) < 365*8 || len(due) > 365*8+12 {
				t.Fatalf("%d slots in 2026", len(due))
			}
			cur := from
			for i, d := range due {
				n := s.Next(cur)
				if !n.At.Equal(d.At) || n.Type != d.Type {
					t.Fatalf("slot %d: Due has %s %s, Next(%s) has %s %s", i, d.At, d.Type, cur, n.At, n.Type)
				}
				if l := s.Last(d.At); !l.At.Equal(d.At) || l.Type != d.Type {
					t.Fatalf("slot %d: Due has %s %s, Last has %s %s", i, d.At, d.Type, l.At, l.Type)
				}
				cur = n.At
			}
		})
	}
}

// The resolver's rule, "the first instant whose wall clock reads w or later",
// checked against a minute-by-minute walk of the instants around DST
// transitions. The resolver is shared across days, as in Slots, so its cached
// fast path is exercised next to its slow one.
func TestResolveAgainstMinuteWalk(t *testing.T) {
	tests := []struct {
		tz          string
		first       string // first local day, "2006-01-02"
		dayCount    int
		stepMinutes int
	}{
		{"America/Los_Angeles", "2026-03-06", 5, 15},
		{"America/Los_Angeles", "2026-10-30", 5, 15},
		{"Europe/Paris", "2026-03-27", 5, 15},
		{"Europe/Paris", "2026-10-23", 5, 15},
		{"Australia/Lord_Howe", "2026-04-03", 5, 5},
		{"Australia/Lord_Howe", "2026-10-02", 5, 5},
		{"America/Santiago", "2026-04-03", 4, 15},
		{"America/Santiago", "2026-09-04", 4, 15},
		{"Pacific/Apia", "2011-12-28", 5, 30},
		{"Asia/Kathmandu", "2026-01-01", 2, 15},
		{"UTC", "2026-01-01", 2, 60},
	}
	for _, tc := range tests {
		t.Run(tc.tz+"/"+tc.first, func(t *testing.T) {
			loc, err := time.LoadLocation(tc.tz)
			if err != nil {
				t.Fatal(err)
			}
			first, err := time.Parse("2006-01-02", tc.first)
			if err != nil {
				t.Fatal(err)
			}
			// Walls as if UTC, the resolver's input.
			var walls []int64
			for m := 0; m < tc.dayCount*24*60; m += tc.stepMinutes {
				walls = append(walls, first.Unix()+int64(m)*60)
			}
			want := make([]int64, len(walls))
			i := walls[0] - 2*86400 // instant cursor, in seconds
			for k, w := range walls {
				// The answer rises with w, so the cursor only moves forward.
				for {
					_, off := time.Unix(i, 0).In(loc).Zone()
					if i+int64(off) >= w {
						break
					}
					i += 60
				}
				want[k] = i
			}
			check := func(r *resolver, k int) {
				if got := r.resolve(walls[k]); got != want[k] {
					t.Errorf("wall %s: resolve gives %s, the minute walk %s",
						time.Unix(walls[k], 0).UTC().Format("2006-01-02 15:04"), time.Unix(got, 0).In(loc), time.Unix(want[k], 0).In(loc))
				}
			}
			// Forward, as Slots asks, and backward, so that the cached period
			// is sometimes later than the answer.
			forward, backward := resolver{loc: loc}, resolver{loc: loc}
			for k := range walls {
				check(&forward, k)
				check(&backward, len(walls)-1-k)
			}
		})
	}
}

func BenchmarkDueYearHourly(b *testing.B) {
	s, err := New(policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sun"), At: "00:30"}, &api.IncrementalSchedule{EveryHours: 1}, 0))
	if err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		slots, err := s.Due(from, to)
		if err != nil || len(slots) < 8000 {
			b.Fatal(len(slots), err)
		}
	}
}

func BenchmarkDueOneMinute(b *testing.B) {
	p := policy("America/Los_Angeles", api.FullSchedule{DaysOfWeek: days("sun"), At: "00:30"}, &api.IncrementalSchedule{EveryHours: 1}, 0)
	now := time.Date(2026, 3, 8, 10, 0, 30, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Due(p, now.Add(-time.Minute), now); err != nil {
			b.Fatal(err)
		}
	}
}
