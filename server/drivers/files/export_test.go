package files

import "time"

// SetWorkPoll sets how often a hub's waiting Work calls poll for jobs.
func SetWorkPoll(h *Hub, every time.Duration) { h.workPoll = every }
