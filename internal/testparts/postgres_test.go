package testparts

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func pgScalar[T any](t *testing.T, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

const userTables = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"

func TestPostgresURLFreshDatabases(t *testing.T) {
	u1, u2 := PostgresURL(t), PostgresURL(t)
	if u1 == u2 {
		t.Fatalf("PostgresURL returned %s twice", u1)
	}
	c1, c2 := pgConnect(t, u1), pgConnect(t, u2)
	db1 := pgScalar[string](t, c1, "SELECT current_database()")
	db2 := pgScalar[string](t, c2, "SELECT current_database()")
	if db1 == db2 || !strings.HasPrefix(db1, "t_testpostgresurlfreshdatabases_") {
		t.Errorf("databases %q and %q", db1, db2)
	}
	for _, c := range []*pgx.Conn{c1, c2} {
		if n := pgScalar[int64](t, c, userTables); n != 0 {
			t.Errorf("new database has %d tables", n)
		}
	}
	if _, err := c1.Exec(context.Background(), "CREATE TABLE only_here (id int)"); err != nil {
		t.Fatal(err)
	}
	if n := pgScalar[int64](t, c2, userTables); n != 0 {
		t.Errorf("table from one test database visible in the other")
	}
}

func TestPostgresURLDropsDatabase(t *testing.T) {
	var name string
	t.Run("user", func(t *testing.T) {
		name = pgScalar[string](t, pgConnect(t, PostgresURL(t)), "SELECT current_database()")
	})
	admin, _, err := postgresAdminURL()
	if err != nil {
		t.Fatal(err)
	}
	if pgScalar[bool](t, pgConnect(t, admin), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// TestPostgresURLWithDatabaseURL uses the shared embedded cluster as the
// "external" server, in both connection string forms.
func TestPostgresURLWithDatabaseURL(t *testing.T) {
	admin, _, err := postgresAdminURL()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	for form, connString := range map[string]string{
		"url":           admin,
		"keyword/value": fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", cfg.Host, cfg.Port, cfg.User),
	} {
		t.Run(form, func(t *testing.T) {
			t.Setenv("HAVEN_DATABASE_URL", connString)
			got := pgScalar[string](t, pgConnect(t, PostgresURL(t)), "SELECT current_database()")
			if !strings.HasPrefix(got, "t_testpostgresurlwithdatabaseurl_") {
				t.Errorf("connected to %q", got)
			}
		})
	}
}

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	for _, in := range []string{"TestX", "TestX/sub test #1", strings.Repeat("Long/", 40), "Ünïcode"} {
		a, b := databaseName(in), databaseName(in)
		if !valid.MatchString(a) || a == b {
			t.Errorf("databaseName(%q) = %q, %q", in, a, b)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://haven@/postgres?host=/tmp/x&port=5432":       "postgres://haven@/t_1?host=/tmp/x&port=5432",
		"postgresql://u:p@db.example:5433/app?sslmode=require":   "postgresql://u:p@db.example:5433/t_1?sslmode=require",
		"postgres://u@h/app?dbname=other&application_name=a%20b": "postgres://u@h/t_1?application_name=a%20b",
		"host=/tmp/x dbname=postgres":                            "host=/tmp/x dbname=postgres dbname=t_1",
	} {
		got, err := withDatabase(in, "t_1")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", in, got, err, want)
		}
		if _, err := pgx.ParseConfig(got); err != nil {
			t.Errorf("pgx cannot parse %q: %v", got, err)
		}
	}
	if _, err := withDatabase("postgres://u:secret@[::1/x", "t_1"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v", err)
	}
}

// TestStopSharedPostgresRestarts runs last in this file and leaves the shared
// cluster stopped, as a TestMain would.
func TestStopSharedPostgresRestarts(t *testing.T) {
	t.Cleanup(StopSharedPostgres)
	old := PostgresURL(t)
	StopSharedPostgres()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, old); err == nil {
		conn.Close(ctx)
		t.Fatal("shared cluster still answers after StopSharedPostgres")
	}
	if n := pgScalar[int64](t, pgConnect(t, PostgresURL(t)), userTables); n != 0 {
		t.Errorf("new database has %d tables", n)
	}
}
