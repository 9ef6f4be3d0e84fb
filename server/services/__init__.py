"""Domain services: they hold the rules, call the store and raise domain errors, never HTTP ones."""
