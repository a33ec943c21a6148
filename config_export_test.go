package kafkaevents

// ConfigTableRow is one row of configFields as the table of
// docs/configuration.md shows it.
type ConfigTableRow struct {
	Env, Field, Default, Notes string
}

// ConfigTableRows returns the rows of configFields, in order, for the
// documentation tests.
func ConfigTableRows() []ConfigTableRow {
	rows := make([]ConfigTableRow, len(configFields))
	for i, f := range configFields {
		rows[i] = ConfigTableRow{Env: f.env, Field: f.field, Default: f.def, Notes: f.doc}
	}
	return rows
}
