package projections

// All returns every projector of the application, in the order status lists
// them; `dashtam serve` runs them and `dashtam projections` manages them.
func All() []Projector {
	return []Projector{Streams{}, EventTypeCounts{}, Connections{}, Syncs{}, FinancialData{}}
}
