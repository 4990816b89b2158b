package syncs

// SetAfterUnit makes h call fn after each committed unit of work of a
// sync's writes; an error stops the sync there, as a crash between two
// units of work would.
func SetAfterUnit(h *Handler, fn func(unit int) error) { h.afterUnit = fn }
