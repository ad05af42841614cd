-- 10: a TLS trunk may opt out of certificate verification (pypbx.trunks, sip.server.TlsPeer)
ALTER TABLE trunks ADD COLUMN tls_verify INTEGER NOT NULL DEFAULT 1;
