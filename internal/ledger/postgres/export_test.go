package postgres

// Schema lets a test build a ledger as an older handover left it.
var Schema = schema
