-- TOTP: the shared secret (base64) and the last time step accepted, so that no code is
-- accepted twice. `users.totp_enabled` already says whether it is on.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
