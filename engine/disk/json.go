package disk

import (
	"encoding/json"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

func jsonUnmarshal(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("disk manifest metadata: %v: %w", err, format.ErrCorrupt)
	}
	return nil
}
