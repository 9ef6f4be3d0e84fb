"""HTTP handlers: parse, authorise, call one service method, write. No storage code here."""
