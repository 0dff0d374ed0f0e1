package esp

// The canonical mf_* write-back fields (verification.md, "Write-back"). Fields maps use these names; each
// adapter maps them to what its platform allows.
const (
	FieldPassed     = "mf_validation_passed"
	FieldReason     = "mf_reason"
	FieldMode       = "mf_mode"
	FieldFlossedOn  = "mf_flossed_on"
	FieldStatus     = "mf_status"
	FieldFixed      = "mf_fixed"
	FieldSuggestion = "mf_suggestion"
)

// FieldNames lists the canonical fields in a stable order (EnsureFields creates them in this order).
var FieldNames = []string{FieldPassed, FieldReason, FieldMode, FieldFlossedOn, FieldStatus, FieldFixed, FieldSuggestion}

// FailedTag is the tag tag-platforms write instead of fields: `mf_failed - <reason>`.
func FailedTag(reason string) string { return "mf_failed - " + reason }
