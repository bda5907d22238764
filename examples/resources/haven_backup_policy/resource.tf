# Weekly fulls and nightly incrementals for VMs and file servers, kept
# grandfather-father-son style for seven years; points older than a year
# move to the storage's cold (archive) class.
resource "haven_backup_policy" "gold" {
  name        = "gold"
  description = "Weekly fulls, nightly incrementals, 7 years of yearlies"
  timezone    = "Europe/Paris"

  full {
    days_of_week = ["sun"]
    at           = "01:00"
  }

  incremental {
    days_of_week = ["mon", "tue", "wed", "thu", "fri", "sat"]
    at           = "01:00"
  }

  retention {
    daily_days     = 14
    weekly_weeks   = 8
    monthly_months = 12
    yearly_years   = 7
  }

  tiering {
    warm_days       = 90
    cold_after_days = 365
  }

  window_hours   = 6
  bandwidth_mbps = 500
  app_consistent = true
}

# For databases (haven_database_set): a monthly full, differentials every
# four hours (a database set's incremental schedule takes differentials) and
# log backups every 15 minutes, kept for a week.
resource "haven_backup_policy" "sql" {
  name     = "sql-point-in-time"
  timezone = "UTC"

  full {
    day_of_month = 1
    at           = "23:00"
  }

  incremental {
    every_hours = 4
  }

  retention {
    daily_days = 35
    log_days   = 7
  }

  log_backup_interval_minutes = 15
}
