package provider

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const policyAddr = "haven_backup_policy.test"

// A weekly policy that leaves every defaultable attribute out.
const policyWeekly = `
resource "haven_backup_policy" "test" {
  name     = "gold"
  timezone = "Europe/Paris"

  full {
    days_of_week = ["sun"]
    at           = "01:30"
  }
  incremental {
    every_hours = 6
  }
  retention {
    daily_days   = 7
    weekly_weeks = 4
  }
}
`

// The same policy with every attribute set.
const policyMonthly = `
resource "haven_backup_policy" "test" {
  name                        = "gold-monthly"
  description                 = "Monthly fulls, weeknight incrementals"
  timezone                    = "America/New_York"
  log_backup_interval_minutes = 15
  window_hours                = 6
  bandwidth_mbps              = 200
  app_consistent              = true
  pre_freeze_script           = "#!/bin/sh\nsync\n"
  cbt                         = false

  full {
    day_of_month = 1
    at           = "03:00"
  }
  incremental {
    days_of_week = ["mon", "tue", "wed", "thu", "fri"]
    at           = "22:15"
  }
  retention {
    daily_days     = 14
    monthly_months = 12
    log_days       = 3
  }
  tiering {
    cold_after_days = 180
  }
}
`

// Back to a minimal policy: blocks and scripts removed.
const policyMinimal = `
resource "haven_backup_policy" "test" {
  name     = "gold-monthly"
  timezone = "UTC"

  full {
    days_of_week = ["sat", "sun"]
    at           = "00:00"
  }
  retention {
    yearly_years = 7
  }
}
`

func checkPoliciesDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			if rs.Type != "haven_backup_policy" {
				continue
			}
			_, err := srv.Client.Policies().Get(context.Background(), rs.Primary.ID)
			if !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return nil
	}
}

func checkPolicyOnServer(srv *servertest.Server, name string, want func(*api.Policy) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		p, err := srv.Client.Policies().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("policy %s on the server: %w", name, err)
		}
		return want(p)
	}
}

func TestAccBackupPolicyResource(t *testing.T) {
	srv := startParallel(t)
	if _, err := srv.Client.Policies().Create(context.Background(), api.PolicyRequest{PolicySpec: api.PolicySpec{
		Name: "taken", Timezone: "UTC", Full: api.FullSchedule{DaysOfWeek: []string{"mon"}, At: "01:00"},
		Retention: api.Retention{DailyDays: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	cfg := providerConfig(srv)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkPoliciesDestroyed(srv),
		Steps: []resource.TestStep{
			{
				// A name conflict is only known to the server; it must be
				// reported against the name attribute.
				Config: cfg + `
resource "haven_backup_policy" "test" {
  name     = "taken"
  timezone = "UTC"
  full {
    days_of_week = ["mon"]
    at           = "01:00"
  }
  retention {
    daily_days = 1
  }
}`,
				ExpectError: errorLike("Could not create backup policy taken", `name = "taken"`, "name: another backup policy already has this name"),
			},
			{
				Config: cfg + policyWeekly,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(policyAddr, plancheck.ResourceActionCreate),
					// Defaults are planned, not left to "known after apply".
					plancheck.ExpectKnownValue(policyAddr, at("cbt"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue(policyAddr, at("script_timeout_seconds"), knownvalue.Null()),
					plancheck.ExpectKnownValue(policyAddr, at("retention", "monthly_months"), knownvalue.Int64Exact(0)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(policyAddr, at("id")),
					newVersion.AddStateValue(policyAddr, at("version")),
					statecheck.ExpectKnownValue(policyAddr, at("full", "days_of_week"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("sun")})),
					statecheck.ExpectKnownValue(policyAddr, at("full", "day_of_month"), knownvalue.Null()),
					statecheck.ExpectKnownValue(policyAddr, at("incremental", "every_hours"), knownvalue.Int64Exact(6)),
					statecheck.ExpectKnownValue(policyAddr, at("incremental", "at"), knownvalue.Null()),
					statecheck.ExpectKnownValue(policyAddr, at("tiering"), knownvalue.Null()),
					statecheck.ExpectKnownValue(policyAddr, at("description"), knownvalue.Null()),
				},
				Check: checkPolicyOnServer(srv, "gold", func(p *api.Policy) error {
					if p.Timezone != "Europe/Paris" || p.Full.At != "01:30" || p.Incremental == nil || p.Incremental.EveryHours != 6 ||
						p.Retention.DailyDays != 7 || p.Retention.WeeklyWeeks != 4 || p.Tiering.WarmDays != api.DefaultWarmDays {
						return fmt.Errorf("server holds %+v", p.PolicySpec)
					}
					return nil
				}),
			},
			{
				Config: cfg + policyMonthly,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(policyAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(policyAddr, at("script_timeout_seconds"), knownvalue.Int64Exact(api.DefaultScriptTimeout)),
					plancheck.ExpectKnownValue(policyAddr, at("tiering", "warm_days"), knownvalue.Int64Exact(api.DefaultWarmDays)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(policyAddr, at("id")),
					newVersion.AddStateValue(policyAddr, at("version")),
					statecheck.ExpectKnownValue(policyAddr, at("full", "day_of_month"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(policyAddr, at("full", "days_of_week"), knownvalue.Null()),
					statecheck.ExpectKnownValue(policyAddr, at("incremental", "every_hours"), knownvalue.Null()),
					statecheck.ExpectKnownValue(policyAddr, at("tiering", "cold_after_days"), knownvalue.Int64Exact(180)),
					statecheck.ExpectKnownValue(policyAddr, at("cbt"), knownvalue.Bool(false)),
				},
				Check: checkPolicyOnServer(srv, "gold-monthly", func(p *api.Policy) error {
					wantDays := []string{"mon", "tue", "wed", "thu", "fri"}
					if p.Full.DayOfMonth != 1 || len(p.Full.DaysOfWeek) != 0 || p.Incremental == nil ||
						!sameSet(p.Incremental.DaysOfWeek, wantDays) || p.Incremental.At != "22:15" ||
						p.Tiering.ColdAfterDays == nil || *p.Tiering.ColdAfterDays != 180 ||
						p.CBT == nil || *p.CBT || p.ScriptTimeoutSeconds != api.DefaultScriptTimeout ||
						p.LogBackupIntervalMinutes != 15 || p.Retention.LogDays != 3 || p.BandwidthMbps != 200 {
						return fmt.Errorf("server holds %+v", p.PolicySpec)
					}
					return nil
				}),
			},
			{
				// Drift: someone shortens retention and changes the timezone
				// behind Terraform's back.
				PreConfig: func() {
					ctx := context.Background()
					p, err := srv.Client.Policies().Get(ctx, "gold-monthly")
					if err != nil {
						t.Fatalf("reading policy: %v", err)
					}
					p.Retention.DailyDays = 1
					p.Timezone = "UTC"
					if _, err := srv.Client.Policies().Update(ctx, p.ID, p.Version, api.PolicyRequest{PolicySpec: p.PolicySpec}); err != nil {
						t.Fatalf("changing policy behind Terraform's back: %v", err)
					}
				},
				Config: cfg + policyMonthly,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(policyAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(policyAddr, at("retention", "daily_days"), knownvalue.Int64Exact(14)),
					plancheck.ExpectKnownValue(policyAddr, at("timezone"), knownvalue.StringExact("America/New_York")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(policyAddr, at("id"))},
				Check: checkPolicyOnServer(srv, "gold-monthly", func(p *api.Policy) error {
					if p.Retention.DailyDays != 14 || p.Timezone != "America/New_York" {
						return fmt.Errorf("drift was not corrected: server holds %+v", p.PolicySpec)
					}
					return nil
				}),
			},
			{
				ResourceName:      policyAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				ResourceName:      policyAddr,
				ImportState:       true,
				ImportStateId:     "gold-monthly",
				ImportStateVerify: true,
			},
			{
				// The same with scripts: the generated timeout is the 600
				// the server applied.
				ResourceName:    policyAddr,
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				GenerateConfig:  true,
			},
			{
				// Removing blocks and scripts returns them to the server's
				// defaults, in place.
				Config: cfg + policyMinimal,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(policyAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(policyAddr, at("script_timeout_seconds"), knownvalue.Null()),
					plancheck.ExpectKnownValue(policyAddr, at("cbt"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue(policyAddr, at("tiering"), knownvalue.Null()),
					plancheck.ExpectKnownValue(policyAddr, at("incremental"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(policyAddr, at("id"))},
				Check: checkPolicyOnServer(srv, "gold-monthly", func(p *api.Policy) error {
					if p.Incremental != nil || p.Tiering.ColdAfterDays != nil || p.Tiering.WarmDays != api.DefaultWarmDays ||
						p.PreFreezeScript != "" || p.ScriptTimeoutSeconds != 0 || p.Retention.YearlyYears != 7 {
						return fmt.Errorf("server holds %+v", p.PolicySpec)
					}
					return nil
				}),
			},
			{
				// A policy imported with default tiering matches a
				// configuration without a tiering block.
				ResourceName:      policyAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				// terraform plan -generate-config-out writes a
				// configuration of a policy without scripts that passes
				// the resource's own validators and plans no change.
				ResourceName:    policyAddr,
				ImportState:     true,
				ImportStateKind: resource.ImportBlockWithID,
				GenerateConfig:  true,
			},
		},
	})
}

// at builds a state path: strings are attribute names, ints list indexes.
func at(first string, steps ...any) tfjsonpath.Path {
	p := tfjsonpath.New(first)
	for _, s := range steps {
		switch s := s.(type) {
		case string:
			p = p.AtMapKey(s)
		case int:
			p = p.AtSliceIndex(s)
		}
	}
	return p
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestAccBackupPolicyResource_invalid(t *testing.T) {
	// policy builds a configuration from a full block and the rest of the
	// body, so each step differs from a valid policy in one place.
	policy := func(full, rest string) string {
		return offlineProviderConfig + `
resource "haven_backup_policy" "test" {
  name     = "p"
  timezone = "UTC"
` + full + rest + `
}
`
	}
	const okFull = `
  full {
    days_of_week = ["mon"]
    at           = "01:00"
  }
`
	const okRetention = `
  retention {
    daily_days = 7
  }
`
	step := func(config string, want ...string) resource.TestStep {
		return resource.TestStep{Config: config, ExpectError: errorLike(want...)}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(policy(`
  full {
    days_of_week = ["mon"]
    at           = "25:00"
  }
`, okRetention), "Attribute full.at must be HH:MM on a 24-hour clock", "got: 25:00"),
			step(`
`+offlineProviderConfig+`
resource "haven_backup_policy" "test" {
  name     = "p"
  timezone = "Mars/Olympus_Mons"
`+okFull+okRetention+`
}
`, "Attribute timezone must be an IANA timezone name", "Mars/Olympus_Mons"),
			step(policy(`
  full {
    days_of_week = ["Monday"]
    at           = "01:00"
  }
`, okRetention), "full.days_of_week", "value must be one of"),
			step(policy(`
  full {
    days_of_week = ["mon"]
    day_of_month = 1
    at           = "01:00"
  }
`, okRetention), "Attribute full.day_of_month conflicts with full.days_of_week"),
			step(policy(`
  full {
    at = "01:00"
  }
`, okRetention), "Attribute full.days_of_week or full.day_of_month is required"),
			step(policy("", okRetention), "Block full must have a configuration value"),
			step(policy(okFull, ""), "Block retention must have a configuration value"),
			step(policy(okFull, `
  retention {
    daily_days = 0
  }
`), "At least one of retention.daily_days"),
			step(policy(okFull, okRetention+`
  tiering {
    cold_after_days = 30
  }
`), "Attribute tiering.cold_after_days must be at least tiering.warm_days (90), got 30"),
			step(policy(okFull, okRetention+`
  incremental {
    every_hours = 4
    at          = "12:00"
  }
`), `Attribute "incremental.at" cannot be specified when "incremental.every_hours" is specified`),
			step(policy(okFull, okRetention+`
  incremental {
    days_of_week = ["mon"]
  }
`), "Attribute incremental.at is required with incremental.days_of_week"),
			step(policy(okFull, okRetention+`
  log_backup_interval_minutes = 15
`), "Attribute retention.log_days must be positive when log_backup_interval_minutes is set"),
			step(policy(okFull, okRetention+`
  script_timeout_seconds = 0
`), "Attribute script_timeout_seconds value must be between 1 and 3600"),
		},
	})
}
